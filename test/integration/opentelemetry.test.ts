import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcMethod, RpcService, createClient, createServer, type RpcClient, type RpcServer } from 'shuttle-rpc';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * The opentelemetry filter with a real OpenTelemetry SDK registered, as an application would:
 * a consumer span, the provider's span continuing it across a real socket, the handler's own
 * span nested under that, statuses and stream spans.
 */
@RpcService({ name: 'test.Traced' })
class Traced {
  @RpcMethod()
  async work(request: { fail?: boolean }): Promise<{ traceId: string | undefined }> {
    // What a handler's own instrumentation does: a span under the active (server) span.
    const child = trace.getTracer('app').startSpan('db-query');
    child.end();
    if (request.fail === true) throw new Error('model not loaded');
    return { traceId: trace.getActiveSpan()?.spanContext().traceId };
  }

  @RpcMethod({ stream: true })
  async *tokens(request: { n: number }): AsyncGenerator<string> {
    for (let i = 0; i < request.n; i++) yield `t${i}`;
  }
}

interface TracedApi {
  work(request: { fail?: boolean }): Promise<{ traceId: string | undefined }>;
  tokens(request: { n: number }): AsyncGenerator<string>;
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let server: RpcServer;
let client: RpcClient;

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  server = await createServer({ services: [new Traced()], registry: false, filters: ['opentelemetry'], log: false, config: false });
  client = await createClient({ registry: server.url, filters: ['opentelemetry'], config: false });
});
afterAll(async () => {
  await client?.close();
  await server?.close();
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});
beforeEach(() => exporter.reset());

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const named = (name: string, kind: SpanKind): ReadableSpan => spans().find((span) => span.name === name && span.kind === kind)!;

describe('opentelemetry spans', () => {
  it("a call is a CLIENT span continued by the provider's SERVER span, and the handler's spans nest under it", async () => {
    const application = trace.getTracer('app');
    const result = await application.startActiveSpan('handle-request', async (root) => {
      try {
        return await client.proxy<TracedApi>('test.Traced').work({});
      } finally {
        root.end();
      }
    });
    await waitUntil(() => spans().length === 4, 'four finished spans');
    const root = named('handle-request', SpanKind.INTERNAL);
    const clientSpan = named('test.Traced/work', SpanKind.CLIENT);
    const serverSpan = named('test.Traced/work', SpanKind.SERVER);
    const query = named('db-query', SpanKind.INTERNAL);
    const traceId = root.spanContext().traceId;
    for (const span of [clientSpan, serverSpan, query]) expect(span.spanContext().traceId).toBe(traceId);
    expect(clientSpan.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.isRemote).toBe(true);
    expect(query.parentSpanContext?.spanId).toBe(serverSpan.spanContext().spanId);
    expect(result.traceId).toBe(traceId);
    expect(clientSpan.attributes).toMatchObject({
      'rpc.system': 'shuttle',
      'rpc.service': 'test.Traced',
      'rpc.method': 'work',
      'rpc.grpc.status_code': RpcCode.OK,
    });
    expect(serverSpan.attributes).toMatchObject({ 'rpc.system': 'shuttle', 'network.peer.address': '127.0.0.1', 'rpc.grpc.status_code': RpcCode.OK });
  });

  it("a failed call marks both spans ERROR: the provider's with the handler's own error, the caller's with what it got", async () => {
    expect(await rejection(client.proxy<TracedApi>('test.Traced').work({ fail: true }))).toMatchObject({ code: RpcCode.INTERNAL });
    await waitUntil(() => spans().filter((span) => span.name === 'test.Traced/work').length === 2, 'both call spans');
    // The provider's telemetry is the operator's: it keeps the message the caller never sees.
    const server = named('test.Traced/work', SpanKind.SERVER);
    expect(server.status).toEqual({ code: SpanStatusCode.ERROR, message: 'UNKNOWN: model not loaded' });
    expect(server.attributes['rpc.grpc.status_code']).toBe(RpcCode.UNKNOWN);
    const caller = named('test.Traced/work', SpanKind.CLIENT);
    expect(caller.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.stringMatching(/^INTERNAL: test\.Traced\.work failed \(correlation id /) });
    expect(caller.status.message).not.toMatch(/model not loaded/);
    expect(caller.attributes['rpc.grpc.status_code']).toBe(RpcCode.INTERNAL);
  });

  it("a stream's spans last until it ends, with its chunk count", async () => {
    const received: string[] = [];
    for await (const token of client.proxy<TracedApi>('test.Traced').tokens({ n: 5 })) received.push(token);
    expect(received).toHaveLength(5);
    await waitUntil(() => spans().filter((span) => span.name === 'test.Traced/tokens').length === 2, 'both stream spans');
    for (const kind of [SpanKind.CLIENT, SpanKind.SERVER]) {
      expect(named('test.Traced/tokens', kind).attributes).toMatchObject({ 'shuttle.stream.chunks': 5, 'rpc.grpc.status_code': RpcCode.OK });
    }
    exporter.reset();
    let taken = 0;
    for await (const _ of client.proxy<TracedApi>('test.Traced').tokens({ n: 1000 })) if (++taken === 2) break;
    await waitUntil(() => spans().some((span) => span.name === 'test.Traced/tokens' && span.kind === SpanKind.CLIENT), 'the client stream span');
    expect(named('test.Traced/tokens', SpanKind.CLIENT).attributes).toMatchObject({ 'shuttle.stream.chunks': 2, 'shuttle.stream.cancelled': true });
  });
});
