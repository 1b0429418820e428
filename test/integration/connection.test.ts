import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcError, RpcMethod, RpcReference, RpcService, createClient, type CallContext, type Proxied } from 'shuttle-rpc';
import { connectRaw, startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { FrameType } from '../../src/transport/frame.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { requestFrame } from '../helpers/frames.js';
import { startFixture } from '../helpers/process.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * Connection behaviour with real sockets on loopback: multiplexing, cancellation, deadlines,
 * heartbeats, graceful close and reconnect. Every test checks that no connection leaks.
 */
let pair: TestPair | undefined;

afterEach(async () => {
  if (pair === undefined) return;
  const { server } = pair;
  await pair.close();
  pair = undefined;
  expect(server.connections).toBe(0);
});

async function start(
  service = new EchoService(),
  options: Parameters<typeof startTestPair>[1] = {},
): Promise<{ echo: Proxied<EchoApi>; service: EchoService }> {
  pair = await startTestPair([service], options);
  return { echo: pair.client.proxy<EchoApi>('test.Echo', { version: '1.0.0' }), service };
}

describe('multiplexing', () => {
  it('runs 500 concurrent calls over one connection and matches every answer to its call', async () => {
    const { echo } = await start();
    const results = await Promise.all(
      Array.from({ length: 500 }, async (_, i) => {
        // Odd calls sleep, so answers come back out of order.
        if (i % 2 === 1) await echo.sleep({ ms: (i * 7) % 40 });
        return echo.echo({ i });
      }),
    );
    expect(results).toEqual(Array.from({ length: 500 }, (_, i) => ({ i })));
    expect(pair!.server.connections).toBe(1);
  });
});

describe('cancellation and deadlines', () => {
  it('an abort rejects CANCELLED at once and aborts the handler through ctx.signal', async () => {
    const { echo, service } = await start();
    const controller = new AbortController();
    const call = echo.sleep({ ms: 10_000 }, { signal: controller.signal });
    await waitUntil(() => service.counts['sleep'] === 1, 'the handler to start');
    const started = Date.now();
    controller.abort();
    const error = (await rejection(call)) as RpcError;
    expect(error.code).toBe(RpcCode.CANCELLED);
    expect(Date.now() - started).toBeLessThan(1000);
    await waitUntil(() => service.abortReason !== null, 'the provider to see the cancel');
    expect(service.abortReason).toMatch(/cancelled by the caller/);
  });

  it('an already-aborted signal fails without sending anything', async () => {
    const { echo, service } = await start();
    const error = (await rejection(echo.sleep({ ms: 10 }, { signal: AbortSignal.abort() }))) as RpcError;
    expect(error.code).toBe(RpcCode.CANCELLED);
    expect(service.counts['sleep']).toBeUndefined();
  });

  it('a timeout fails DEADLINE_EXCEEDED and aborts the handler', async () => {
    const { echo, service } = await start();
    const error = (await rejection(echo.sleep({ ms: 10_000 }, { timeoutMs: 100 }))) as RpcError;
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    await waitUntil(() => service.abortReason !== null, 'the provider to abort the handler');
  });

  it('a request whose deadline already passed is refused without running', async () => {
    const { service } = await start();
    const raw = await connectRaw('127.0.0.1', pair!.server.port);
    raw.send(requestFrame(1, 'sleep', { ms: 1 }, { meta: { 'shuttle-timeout-ms': '0' } }));
    const answer = await raw.nextFrame();
    expect(answer.status).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(service.counts['sleep']).toBeUndefined();
    raw.close();
  });

  it("past the provider's own deadline the caller is told DEADLINE_EXCEEDED, not the error the abort caused in the handler", async () => {
    @RpcService({ name: 'test.Nested', version: '1.0.0' })
    class NestedService {
      /** Fails as a handler does whose nested call its own abort cancelled. */
      @RpcMethod()
      async wait(_request: unknown, ctx: CallContext): Promise<never> {
        return new Promise<never>((_resolve, reject) =>
          ctx.signal.addEventListener('abort', () => reject(new RpcError(RpcCode.CANCELLED, 'the nested call was cancelled'))),
        );
      }
    }
    pair = await startTestPair([new EchoService(), new NestedService()]);
    // A raw caller has no timer of its own: what it gets is the provider's answer.
    const raw = await connectRaw('127.0.0.1', pair.server.port);
    raw.send(requestFrame(1, 'wait', {}, { service: 'test.Nested', meta: { 'shuttle-timeout-ms': '100' } }));
    const answer = await raw.nextFrame((frame) => frame.type === FrameType.RESPONSE, 3000);
    expect(answer.status).toBe(RpcCode.DEADLINE_EXCEEDED);
    raw.close();
  });

  it('a dropped connection aborts every handler running on it', async () => {
    const { service } = await start();
    const raw = await connectRaw('127.0.0.1', pair!.server.port);
    raw.send(requestFrame(1, 'sleep', { ms: 10_000 }));
    await waitUntil(() => service.counts['sleep'] === 1, 'the handler to start');
    raw.close();
    await waitUntil(() => service.abortReason !== null, 'the handler to be aborted');
    expect(service.abortReason).toMatch(/connection closed/);
  });

  it('rejects bad per-call options with INVALID_ARGUMENT naming the option', async () => {
    const { echo } = await start();
    expect((await rejection(echo.echo(1, { timeoutMs: -1 }))).message).toMatch(/timeoutMs of test\.Echo\.echo must be an integer from 1/);
    expect((await rejection(echo.echo(1, { timeout: 5 } as never))).message).toMatch(/unknown option call options of test\.Echo\.echo\.timeout/);
    expect((await rejection(echo.echo(1, { metadata: { n: 1 } } as never))).message).toMatch(/metadata "n" must be a string/);
  });
});

describe('heartbeats and lifecycle', () => {
  it('keeps an idle connection alive with heartbeats', async () => {
    const { echo } = await start(new EchoService(), { client: { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 100 } });
    expect(await echo.echo('a')).toBe('a');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await echo.echo('b')).toBe('b');
    expect(pair!.server.connections).toBe(1);
  });

  it('a provider that closes sends GOAWAY, finishes calls in flight, then refuses new ones', async () => {
    const { echo } = await start();
    const inFlight = echo.sleep({ ms: 300 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = pair!.server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = (await rejection(echo.echo('late'))) as RpcError;
    expect(refused.code).toBe(RpcCode.UNAVAILABLE);
    expect(refused.details).toEqual({ neverSent: true });
    expect(await inFlight).toEqual({ aborted: false });
    await closing;
  });

  it('client close waits for calls in flight', async () => {
    const { echo } = await start();
    const inFlight = echo.sleep({ ms: 200 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await pair!.client.close();
    expect(await inFlight).toEqual({ aborted: false });
    await expect(echo.echo(1)).rejects.toThrow(/client is closed/);
  });

  it('one-way calls resolve once sent and get no answer', async () => {
    const { echo, service } = await start();
    expect(await echo.echo('fire', { oneWay: true })).toBeUndefined();
    await waitUntil(() => service.counts['echo'] === 1, 'the one-way call to run');
  });

  it('injects @RpcReference properties', async () => {
    await start();
    class Consumer {
      @RpcReference('test.Echo', { version: '1.0.0' })
      echo!: Proxied<EchoApi>;
    }
    const consumer = pair!.client.inject(new Consumer());
    expect(await consumer.echo.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
  });
});

describe('reconnect', () => {
  it('fails calls UNAVAILABLE when the provider process dies, and reconnects when it is back', async () => {
    const first = await startFixture('provider');
    // Breakers and ejection off: this test is about the connection's own reconnect.
    const client = await createClient({
      registry: first.url,
      reconnect: { initialMs: 50, maxMs: 200 },
      circuitBreaker: false,
      outlierEjection: false,
      config: false,
    });
    const echo = client.proxy<EchoApi>('test.Echo');
    expect(await echo.pid()).toBe(first.process.pid);
    const inFlight = echo.sleep({ ms: 10_000 });
    first.process.kill('SIGKILL');
    const lost = (await rejection(inFlight)) as RpcError;
    expect(lost.code).toBe(RpcCode.UNAVAILABLE);
    const second = await startFixture('provider', { SHUTTLE_PORT: String(first.port) });
    let pid: number | undefined;
    await waitUntil(() => {
      echo.pid().then(
        (value) => (pid = value),
        () => {},
      );
      return pid === second.process.pid;
    }, 'calls to reach the restarted provider');
    await client.close();
    await second.stop();
  });
});

describe('registry-less frames', () => {
  it('answers HEARTBEAT with HEARTBEAT_ACK echoing the id', async () => {
    await start();
    const raw = await connectRaw('127.0.0.1', pair!.server.port);
    const { encodeFrame } = await import('../../src/transport/frame.js');
    raw.send(encodeFrame(FrameType.HEARTBEAT, 77));
    const ack = await raw.nextFrame();
    expect([ack.type, ack.requestId]).toEqual([FrameType.HEARTBEAT_ACK, 77]);
    raw.close();
  });
});
