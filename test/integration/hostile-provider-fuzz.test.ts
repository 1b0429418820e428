import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcError } from 'shuttle-rpc';
import { RpcCode } from '../../src/errors/errors.js';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { encodeFrame, FrameFlag, FrameType, type Frame } from '../../src/transport/frame.js';
import { encodeChunkFrame, encodeEndFrame } from '../../src/transport/stream-frames.js';
import { encodeErrorFrame } from '../../src/transport/tcp/wire-error.js';
import { ENVELOPE_TYPE } from '../../src/transport/grpc/codec.js';
import { ERROR_TRAILER, LOAD_TRAILER, RESULT_TRAILER } from '../../src/transport/grpc/status.js';
import { mutate, random } from '../helpers/fuzz.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * A provider that answers calls with mutated frames (tcp: answers, stream chunks, stream ends,
 * load reports and error bodies with bytes flipped, inserted, cut or grown, and garbage between
 * them) or mutated messages, trailers, codes and details (grpc), in front of a whole client
 * (proxy, cluster, balancer, connection). Whatever it sends, a
 * consumer must never crash or reject unhandled, never leave a call unsettled past its
 * deadline, fail every call it fails with an RpcError (no TypeError or RangeError from its own
 * code reaching the caller), and call the provider normally again once it behaves.
 */
const packr = new Packr({ useRecords: false, moreTypes: true });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface EchoApi {
  echo(value: unknown): Promise<unknown>;
  count(request: { n: number }): AsyncIterable<unknown>;
}

/** The frames an honest provider would send for `frame` (a REQUEST), load report included. */
function honestAnswer(frame: Frame, next: () => number): Buffer[] {
  const id = frame.requestId;
  const load = encodeFrame(
    FrameType.LOAD,
    0,
    Buffer.from(JSON.stringify({ timestamp: Date.now(), running: 1, waiting: Math.floor(next() * 5), draining: false })),
    {
      serializer: 2,
    },
  );
  if ((frame.flags & FrameFlag.STREAM) === 0) {
    if (next() < 0.2) {
      const error = new RpcError(RpcCode.UNAVAILABLE, 'busy', { details: { at: 'x'.repeat(Math.floor(next() * 40)) }, retryAfterMs: 5 });
      return [encodeErrorFrame(FrameType.RESPONSE, id, error), load];
    }
    return [encodeFrame(FrameType.RESPONSE, id, packr.pack({ ok: true, list: [1, 'two', 3.5] }), { serializer: 1 }), load];
  }
  const chunks = Math.floor(next() * 4);
  const frames: Buffer[] = [];
  for (let sequence = 0; sequence < chunks; sequence++) frames.push(encodeChunkFrame(id, 1, sequence, packr.pack({ token: `t${sequence}` })));
  frames.push(
    next() < 0.2
      ? encodeErrorFrame(FrameType.STREAM_END, id, new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'full', { retryAfterMs: 10 }))
      : encodeEndFrame(id, 1, chunks, packr.pack({ usage: { tokens: chunks } })),
  );
  frames.push(load);
  return frames;
}

/** A provider on a real socket: `hostile()` says, per answer, whether to mutate it. */
async function fuzzingProvider(seed: number, hostile: () => boolean): Promise<{ port: number; answered: () => number; mutated: () => number }> {
  const next = random(seed);
  let answered = 0;
  let mutated = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new FrameDecoder(1 << 24);
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (frame) => {
          if (frame.type === FrameType.HEARTBEAT) socket.write(encodeFrame(FrameType.HEARTBEAT_ACK, frame.requestId));
          if (frame.type !== FrameType.REQUEST || socket.destroyed) return;
          answered++;
          let frames = honestAnswer(frame, next);
          if (hostile()) {
            mutated++;
            frames = frames.map((bytes) => (next() < 0.5 ? mutate(next() < 0.5 ? bytes : mutate(bytes, next), next) : bytes));
            if (next() < 0.2)
              frames.splice(
                Math.floor(next() * frames.length),
                0,
                Buffer.from(Array.from({ length: 1 + Math.floor(next() * 40) }, () => Math.floor(next() * 256))),
              );
          }
          const all = Buffer.concat(frames);
          // Sometimes in pieces, a tick apart, as a slow network would deliver them.
          if (next() < 0.3 && all.length > 2) {
            const cut = 1 + Math.floor(next() * (all.length - 1));
            socket.write(all.subarray(0, cut));
            setImmediate(() => socket.destroyed || socket.write(all.subarray(cut)));
          } else {
            socket.write(all);
          }
        });
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, answered: () => answered, mutated: () => mutated };
}

/** Catches unhandled rejections and uncaught exceptions for the rest of the test. */
function escapes(): unknown[] {
  const caught: unknown[] = [];
  const onEscape = (reason: unknown): void => void caught.push(reason);
  process.on('unhandledRejection', onEscape);
  process.on('uncaughtException', onEscape);
  cleanups.push(() => {
    process.off('unhandledRejection', onEscape);
    process.off('uncaughtException', onEscape);
  });
  return caught;
}

/** Runs `calls` calls, `concurrency` at a time, and sorts how each ended. */
async function callAll(
  one: (index: number) => Promise<void>,
  calls: number,
  concurrency: number,
  lateMs: number,
): Promise<{ values: number; errors: number; foreign: string[]; late: number[]; kinds: Map<string, number> }> {
  const result = { values: 0, errors: 0, foreign: [] as string[], late: [] as number[], kinds: new Map<string, number>() };
  const started = Date.now();
  for (let batch = 0; batch * concurrency < calls && Date.now() - started < 30_000; batch++) {
    await Promise.all(
      Array.from({ length: concurrency }, async (_, i) => {
        const callStarted = performance.now();
        try {
          await one(batch * concurrency + i);
          result.values++;
        } catch (error) {
          result.errors++;
          const key = `${(error as RpcError).code} ${String((error as Error).message).slice(0, 120)}`;
          result.kinds.set(key, (result.kinds.get(key) ?? 0) + 1);
          if (!(error instanceof RpcError))
            result.foreign.push(`${(error as Error)?.constructor?.name}: ${String((error as Error)?.message ?? error).slice(0, 200)}`);
        }
        const took = performance.now() - callStarted;
        if (took > lateMs) result.late.push(Math.round(took));
      }),
    );
  }
  return result;
}

/** One unary call, or (every third) one stream read to its end; what the chunks hold may be mutated too. */
async function oneCall(echo: EchoApi, index: number): Promise<void> {
  if (index % 3 !== 0) {
    await echo.echo({ index });
    return;
  }
  for await (const _chunk of echo.count({ n: 3 })) {
    // Read every chunk.
  }
}

/** Resolves once unary calls and streams to a provider that behaves again succeed three times. */
async function recovers(echo: EchoApi): Promise<void> {
  let healthy = 0;
  await waitUntil(
    async () => {
      try {
        await echo.echo('again');
        const chunks: unknown[] = [];
        for await (const chunk of echo.count({ n: 3 })) chunks.push(chunk);
        healthy = chunks.length === 0 ? healthy : healthy + 1;
        return healthy >= 3;
      } catch {
        return false;
      }
    },
    'calls to succeed once the provider behaves',
    30_000,
    100,
  );
}

/**
 * Nothing escaped, every call ended with a value or an RpcError and in time, at least half were
 * made, and both kinds of ending happened: the fuzz reached the decoding paths and the good ones.
 */
function expectSettled(result: Awaited<ReturnType<typeof callAll>>, unhandled: unknown[]): void {
  expect(unhandled.map(String)).toEqual([]);
  expect(result.foreign).toEqual([]);
  expect(result.late).toEqual([]);
  expect(result.values + result.errors).toBeGreaterThanOrEqual(300);
  expect(result.values).toBeGreaterThan(0);
  expect(result.errors).toBeGreaterThan(0);
}

const passThrough = (bytes: Buffer): Buffer => bytes;
const rawMethod = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: passThrough,
  requestDeserialize: passThrough,
  responseSerialize: passThrough,
  responseDeserialize: passThrough,
});

/** A gRPC server at test.Echo whose answers, trailers and statuses `hostile()` says to mutate. */
async function fuzzingGrpcProvider(seed: number, hostile: () => boolean): Promise<{ port: number; mutated: () => number }> {
  const next = random(seed);
  let mutated = 0;
  const maybe = (bytes: Buffer, bad: boolean): Buffer => (bad && next() < 0.6 ? mutate(next() < 0.5 ? bytes : mutate(bytes, next), next) : bytes);
  const envelope = (value: unknown): Buffer =>
    Buffer.from(ENVELOPE_TYPE.encode(ENVELOPE_TYPE.create({ body: packr.pack(value), serializer: 'msgpack' })).finish());
  const trailers = (bad: boolean, result?: unknown): grpc.Metadata => {
    const metadata = new grpc.Metadata();
    const load = JSON.stringify({ timestamp: Date.now(), running: 1, waiting: Math.floor(next() * 5), draining: false });
    metadata.set(
      LOAD_TRAILER,
      bad && next() < 0.5
        ? maybe(Buffer.from(load), true)
            .toString('latin1')
            .replace(/[^\x20-\x7e]/g, '')
        : load,
    );
    if (result !== undefined) metadata.set(RESULT_TRAILER, maybe(envelope(result), bad));
    return metadata;
  };
  const failure = (bad: boolean): Partial<grpc.StatusObject> => {
    const metadata = new grpc.Metadata();
    metadata.set(ERROR_TRAILER, maybe(Buffer.from(JSON.stringify({ details: { why: 'busy' }, retryAfterMs: 5 })), bad));
    const code = bad && next() < 0.3 ? Math.floor(next() * 40) : grpc.status.UNAVAILABLE;
    return { code, details: bad && next() < 0.3 ? 'x'.repeat(Math.floor(next() * 3000)) : 'busy', metadata };
  };
  const server = new grpc.Server();
  server.addService(
    { echo: rawMethod('/test.Echo/echo', false), count: rawMethod('/test.Echo/count', true) } as unknown as grpc.ServiceDefinition,
    {
      echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const bad = hostile();
        if (bad) mutated++;
        if (next() < 0.2) return callback(failure(bad) as grpc.ServiceError);
        callback(null, maybe(envelope({ ok: true, list: [1, 'two', 3.5] }), bad), trailers(bad));
      },
      count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const bad = hostile();
        if (bad) mutated++;
        const chunks = Math.floor(next() * 4);
        for (let sequence = 0; sequence < chunks; sequence++) call.write(maybe(envelope({ token: `t${sequence}` }), bad));
        if (next() < 0.2) {
          call.emit('error', failure(bad));
          return;
        }
        call.end(trailers(bad, { usage: { tokens: chunks } }));
      },
    } as unknown as grpc.UntypedServiceImplementation,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  cleanups.push(() => void server.forceShutdown());
  return { port, mutated: () => mutated };
}

describe('fuzzing a live consumer', () => {
  it('grpc transport: 600 calls, three answers in ten with mutated messages, trailers, load reports, codes and details — every call settles by its deadline with a value or an RpcError, nothing rejects unhandled, and the provider is called normally once it behaves', {
    timeout: 60_000,
  }, async () => {
    const unhandled = escapes();
    const mutating = random(11);
    let behaving = false;
    const provider = await fuzzingGrpcProvider(2027, () => !behaving && mutating() < 0.3);
    const client = await createClient({
      registry: `shuttle://127.0.0.1:${provider.port}`,
      transport: 'grpc',
      config: false,
      timeoutMs: 500,
      circuitBreaker: false,
      outlierEjection: false,
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const result = await callAll((index) => oneCall(echo, index), 600, 20, 3000);
    console.log(
      `grpc consumer fuzz: ${result.values} calls settled with a value, ${result.errors} with an RpcError; ${provider.mutated()} answers mutated; most frequent failures:`,
      [...result.kinds].sort((a, b) => b[1] - a[1]).slice(0, 6),
    );
    behaving = true;
    await recovers(echo);
    expectSettled(result, unhandled);
  });

  it('tcp transport: 600 calls, three answers in ten with mutated frames — every call settles by its deadline with a value or an RpcError, nothing rejects unhandled, and the provider is called normally once it behaves', {
    timeout: 90_000,
  }, async () => {
    const unhandled = escapes();
    let behaving = false;
    const mutating = random(7);
    // Three answers in ten are mutated: enough violations to reconnect hundreds of times, and
    // enough honest answers between them to reach the decoding of values and streams.
    const provider = await fuzzingProvider(2026, () => !behaving && mutating() < 0.3);
    // No breaker, no ejection and a reconnect within milliseconds, so that every call reaches
    // the provider (after each violation, on a new connection) instead of failing fast while it
    // is shunned.
    const client = await createClient({
      registry: `shuttle://127.0.0.1:${provider.port}`,
      config: false,
      timeoutMs: 500,
      circuitBreaker: false,
      outlierEjection: false,
      reconnect: { initialMs: 1, maxMs: 20 },
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    // Each call's own deadline (0.5 s, the retries inside it) and a margin for a loaded machine.
    const result = await callAll((index) => oneCall(echo, index), 600, 20, 3000);
    console.log(
      `tcp consumer fuzz: ${result.values} calls settled with a value, ${result.errors} with an RpcError; the provider mutated ${provider.mutated()} of ${provider.answered()} answers; most frequent failures:`,
      [...result.kinds].sort((a, b) => b[1] - a[1]).slice(0, 6),
    );
    // It behaves now: calls succeed again.
    behaving = true;
    await recovers(echo);
    expectSettled(result, unhandled);
  });
});
