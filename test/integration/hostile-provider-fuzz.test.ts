import net from 'node:net';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcError } from 'shuttle-rpc';
import { RpcCode } from '../../src/errors/errors.js';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { encodeFrame, FrameFlag, FrameType, type Frame } from '../../src/transport/frame.js';
import { encodeChunkFrame, encodeEndFrame } from '../../src/transport/stream-frames.js';
import { encodeErrorFrame } from '../../src/transport/tcp/wire-error.js';
import { mutate, random } from '../helpers/fuzz.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * A provider that answers every call with mutated frames — answers, stream chunks, stream ends,
 * load reports and error bodies with bytes flipped, inserted, cut or grown, and garbage between
 * them — in front of a whole client (proxy, cluster, balancer, connection). Whatever it sends, a
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

describe('fuzzing a live consumer', () => {
  it('600 calls, three answers in ten with mutated frames: every call settles by its deadline with a value or an RpcError, nothing rejects unhandled, and the provider is called normally once it behaves', {
    timeout: 90_000,
  }, async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    cleanups.push(() => {
      process.off('unhandledRejection', onUnhandled);
      process.off('uncaughtException', onUnhandled);
    });
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
    const foreign: string[] = [];
    const late: number[] = [];
    const kinds = new Map<string, number>();
    let values = 0;
    let errors = 0;
    const one = async (index: number): Promise<void> => {
      const started = performance.now();
      try {
        if (index % 3 === 0) {
          for await (const _chunk of echo.count({ n: 3 })) {
            // Read every chunk; what they hold may be mutated too.
          }
        } else {
          await echo.echo({ index });
        }
        values++;
      } catch (error) {
        errors++;
        const key = `${(error as RpcError).code} ${String((error as Error).message).slice(0, 120)}`;
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
        if (!(error instanceof RpcError)) foreign.push(`${(error as Error)?.constructor?.name}: ${String((error as Error)?.message ?? error).slice(0, 200)}`);
      }
      // Its own deadline (0.5 s, the retries inside it) and a margin for a loaded machine.
      const took = performance.now() - started;
      if (took > 3000) late.push(Math.round(took));
    };
    const started = Date.now();
    for (let batch = 0; batch < 30 && Date.now() - started < 30_000; batch++) await Promise.all(Array.from({ length: 20 }, (_, i) => one(batch * 20 + i)));
    const calls = values + errors;

    // It behaves now: within a few seconds (an ejection or an open breaker runs out), calls succeed.
    behaving = true;
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
    console.log(
      `consumer fuzz: ${calls} calls in ${Date.now() - started} ms, ${values} settled with a value, ${errors} with an RpcError; the provider mutated ${provider.mutated()} of ${provider.answered()} answers`,
    );
    console.log('most frequent failures:', [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 6));
    expect(unhandled.map(String)).toEqual([]);
    expect(foreign).toEqual([]);
    expect(late).toEqual([]);
    expect(calls).toBeGreaterThanOrEqual(300);
    // Both kinds of ending happened: the fuzz reached the decoding paths and the good ones.
    expect(values).toBeGreaterThan(0);
    expect(errors).toBeGreaterThan(0);
  });
});
