import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcClient, type RpcError, type Proxied } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import type { StreamApi } from '../fixtures/stream-service.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection, waitUntil } from '../helpers/wait.js';
import { collect } from '../helpers/collect.js';

/*
 * Server streaming, cancellation and deadlines over real sockets, with the provider in its
 * own process. Timing bounds are behaviour (a deadline fires near its time, a cancel reaches
 * the handler promptly), kept generous for a loaded 2-core machine; speed is measured by
 * npm run bench:stream, not here.
 */
let provider: Child;
let client: RpcClient;
let stream: Proxied<StreamApi>;
let echo: Proxied<EchoApi>;

beforeAll(async () => {
  provider = await startFixture('provider', { PROVIDER_STREAM: '1' });
  client = await createClient({ registry: provider.url, timeoutMs: 20_000, config: false });
  stream = client.proxy<StreamApi>('test.Stream');
  echo = client.proxy<EchoApi>('test.Echo');
});
afterAll(async () => {
  await client.close();
  await provider.stop();
});
beforeEach(async () => {
  await Promise.all([stream.reset(), echo.reset()]);
});

type StreamStats = Awaited<ReturnType<StreamApi['stats']>>;

/** The provider's stream stats once `check` holds for them (read every 10 ms, up to 3 s). */
async function statsWhen(check: (stats: StreamStats) => boolean, what: string): Promise<StreamStats> {
  let stats: StreamStats | undefined;
  await waitUntil(
    async () => check((stats = await stream.stats())),
    () => `${what} (last stats: ${JSON.stringify(stats)})`,
    3000,
  );
  return stats!;
}

/** The provider's stream stats once `check` holds, collecting garbage before each read (up to 5 s). */
async function statsWhenCollecting(gc: () => void, check: (stats: StreamStats) => boolean, what: string): Promise<StreamStats> {
  let stats: StreamStats | undefined;
  await waitUntil(
    async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
      return check((stats = await stream.stats()));
    },
    () => `${what} (last stats: ${JSON.stringify(stats)})`,
    5000,
  );
  return stats!;
}

/** test.Echo's last abort reason once one was recorded (read every 10 ms, up to 3 s). */
async function lastAbort(what: string): Promise<string> {
  let reason: string | null = null;
  await waitUntil(async () => (reason = await echo.lastAbort()) !== null, what, 3000);
  return reason!;
}

describe('server streaming', () => {
  it('delivers every chunk in order, then the trailer', async () => {
    const call = stream.count({ n: 100 });
    const chunks = await collect(call);
    expect(chunks).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })));
    expect(await call.trailer).toEqual({ count: 100 });
  });

  it('delivers the first chunk while the handler is still running', async () => {
    const started = Date.now();
    const call = stream.count({ n: 2, waitAfterFirstMs: 1500 });
    const iterator = call[Symbol.asyncIterator]();
    const first = await iterator.next();
    const firstAfter = Date.now() - started;
    expect(first).toEqual({ value: { i: 0 }, done: false });
    expect(firstAfter).toBeLessThan(1000);
    expect((await stream.stats()).finallyRan).toBe(0);
    expect((await iterator.next()).value).toEqual({ i: 1 });
    expect((await iterator.next()).done).toBe(true);
  });

  it('delivers a PushStream the producer feeds, then its end value', async () => {
    const call = stream.pushed({ n: 500 });
    expect(await collect(call)).toEqual(Array.from({ length: 500 }, (_, i) => ({ i })));
    expect(await call.trailer).toEqual({ count: 500 });
    await statsWhen((stats) => stats.finallyRan === 1, 'the push stream to close after its end');
  });

  it("tells a PushStream's producer when the reader leaves, and holds at most its high-water mark for a reader that stalls", async () => {
    const iterator = stream.pushed({ n: 1e9 })[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ i: 0 });
    // The reader stalls: the flow-control window fills, then the stream's buffer to its mark.
    await statsWhen((stats) => stats.maxBuffered >= 8, 'the producer to be held back');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const held = await stream.stats();
    expect(held.maxBuffered).toBe(8);
    await iterator.return?.();
    const closed = await statsWhen((stats) => stats.finallyRan === 1, 'the producer to be told the reader left');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await stream.stats()).yielded).toBe(closed.yielded);
  });

  it('surfaces a handler error after the chunks sent before it, with its code', async () => {
    const received: unknown[] = [];
    const error = (await rejection(
      (async () => {
        for await (const chunk of stream.count({ n: 10, failAt: 3 })) received.push(chunk);
      })(),
    )) as RpcError;
    expect(received).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(error.message).toMatch(/out of KV cache at chunk 3/);
    expect(error.retryAfterMs).toBe(10);
  });

  it('leaving the loop early stops the provider generator and runs its finally block', async () => {
    let taken = 0;
    for await (const _chunk of stream.count({ n: 1_000_000, delayMs: 1 })) {
      if (++taken === 5) break;
    }
    const stats = await statsWhen((current) => current.finallyRan > 0, "the generator's finally block");
    expect(stats.aborted).toBe(1);
    expect(stats.finallyRan).toBe(1);
    expect(stats.lastAbortReason).toMatch(/cancelled by the caller/);
    expect(stats.yielded).toBeLessThan(1000);
  });

  it('an iterator dropped unfinished (no return()) stops its provider generator once it is collected, long before its deadline', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // Each stream fills its window and then waits for a reader that has gone.
    const read = async (): Promise<void> => {
      const iterator = stream.count({ n: 1_000_000, size: 1000 }, { timeoutMs: 600_000 })[Symbol.asyncIterator]();
      await iterator.next();
      await iterator.next();
    };
    for (let i = 0; i < 10; i++) await read();
    const stats = await statsWhenCollecting(gc, (current) => current.finallyRan === 10, 'every dropped stream stopped on the provider');
    expect(stats.started).toBe(10);
    expect(stats.aborted).toBe(10);
    expect(stats.lastAbortReason).toMatch(/cancelled by the caller/);
  });

  it('an abort after k chunks fires the provider signal and stops the generator promptly', async () => {
    const controller = new AbortController();
    let taken = 0;
    let abortedAt = 0;
    const error = (await rejection(
      (async () => {
        for await (const _chunk of stream.count({ n: 1_000_000, delayMs: 2 }, { signal: controller.signal })) {
          if (++taken === 10) {
            abortedAt = Date.now();
            controller.abort();
          }
        }
      })(),
    )) as RpcError;
    expect(error.code).toBe(RpcCode.CANCELLED);
    const stats = await statsWhen(
      (current) => current.lastAbortAt !== null && current.finallyRan > 0,
      'the provider to see the abort and run the finally block',
    );
    // Same machine, same clock: the provider's timestamp of its abort event against ours.
    const delay = stats.lastAbortAt! - abortedAt;
    console.log(`cancel reached the provider handler ${delay} ms after abort()`);
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(500);
    expect(stats.finallyRan).toBe(1);
  });

  it('a generator that never awaits does not hold the provider: a cancel after its first chunk is read within a few turns', async () => {
    // A window wide enough that flow control never stops the generator: only the provider's
    // chunks-per-turn budget lets it read the CANCEL before all 20,000 chunks are made.
    const wide = await createClient({ registry: provider.url, timeoutMs: 20_000, config: false, streamWindowBytes: 1 << 20 });
    try {
      for await (const _chunk of wide.proxy<StreamApi>('test.Stream').count({ n: 20_000 })) break;
      const stats = await statsWhen((current) => current.finallyRan > 0, "the generator's finally block");
      expect(stats.aborted).toBe(1);
      // 512 chunks a turn: a cancel that takes the consumer even 10 turns to send stays well under.
      expect(stats.yielded).toBeLessThan(10_000);
    } finally {
      await wide.close();
    }
  });

  it('a reader that stops reading 10,000-chunk streams keeps the provider bounded', async () => {
    const streams = 20;
    const iterators = Array.from({ length: streams }, () => stream.count({ n: 10_000, size: 16 })[Symbol.asyncIterator]());
    for (const iterator of iterators) expect((await iterator.next()).done).toBe(false);
    // Let the providers run as far as flow control allows.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stalled = await stream.stats();
    // 64 KiB window / ~45-byte chunk frames: about 1,500 chunks per stream at most, not 10,000.
    console.log(`stalled readers: the provider produced ${stalled.yielded} of ${streams * 10_000} chunks`);
    expect(stalled.started).toBe(streams);
    expect(stalled.yielded).toBeLessThan(streams * 2000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const later = await stream.stats();
    expect(later.yielded).toBe(stalled.yielded);
    expect(later.heapUsed - stalled.heapUsed).toBeLessThan(16 * 1024 * 1024);
    for (const iterator of iterators) await iterator.return?.();
    const stats = await statsWhen((current) => current.finallyRan === streams, `the finally blocks of all ${streams} streams`);
    expect(stats.aborted).toBe(streams);
  });

  it('awaiting a streaming method, or iterating a unary one, is refused with a fix', async () => {
    const awaited = (await rejection(stream.count({ n: 1 }) as unknown as Promise<unknown>)) as RpcError;
    expect(awaited.code).toBe(RpcCode.FAILED_PRECONDITION);
    expect(awaited.message).toMatch(/test\.Stream\.count is a server-streaming method: iterate the call/);
    const iterated = (await rejection(collect(echo.echo(1) as unknown as AsyncIterable<unknown>))) as RpcError;
    expect(iterated.code).toBe(RpcCode.FAILED_PRECONDITION);
    expect(iterated.message).toMatch(/test\.Echo\.echo is a unary method: await the call/);
  });

  it('one AbortSignal across 32 calls and streams at once prints no MaxListenersExceededWarning, and cancels them all', async () => {
    const warnings: Error[] = [];
    const listener = (warning: Error): void => void warnings.push(warning);
    process.on('warning', listener);
    try {
      const controller = new AbortController();
      const unary = Array.from({ length: 16 }, () => echo.echo(1, { signal: controller.signal }));
      expect(await Promise.all(unary)).toEqual(Array.from({ length: 16 }, () => 1));
      const streams = Array.from({ length: 16 }, () => collect(stream.count({ n: 1000, delayMs: 20 }, { signal: controller.signal })));
      await new Promise((resolve) => setTimeout(resolve, 100));
      controller.abort();
      const ended = await Promise.allSettled(streams);
      expect(ended.every((result) => result.status === 'rejected' && (result.reason as RpcError).code === RpcCode.CANCELLED)).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', listener);
    }
  });

  it('a streaming call used only as a stream is never an unhandled rejection: iterated too late, or only its trailer read', async () => {
    const unhandled: unknown[] = [];
    const listener = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const late = stream.count({ n: 2 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = (await rejection(collect(late as AsyncIterable<unknown>))) as RpcError;
      expect(refused.message).toMatch(/already started as a unary call/);
      const trailerOnly = stream.count({ n: 2 });
      const trailerError = (await rejection(trailerOnly.trailer)) as RpcError;
      expect(trailerError.message).toMatch(/only available on an iterated/);
      // Both calls went to the provider as unary calls and were refused there.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(unhandled).toEqual([]);
      // Awaiting such a call still gets the provider's answer.
      const awaited = (await rejection(late as unknown as Promise<unknown>)) as RpcError;
      expect(awaited.message).toMatch(/is a server-streaming method/);
    } finally {
      process.off('unhandledRejection', listener);
    }
  });
});

describe('deadlines', () => {
  it('a 200 ms deadline on a handler sleeping 1 s fails in 200-300 ms and aborts the handler', async () => {
    const started = Date.now();
    const error = (await rejection(echo.sleep({ ms: 1000 }, { timeoutMs: 200 }))) as RpcError;
    const elapsed = Date.now() - started;
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(300);
    expect(await lastAbort('the handler to be aborted')).toMatch(/deadline exceeded/);
  });

  it('a deadline in the middle of a stream ends it with DEADLINE_EXCEEDED and stops the generator', async () => {
    const received: unknown[] = [];
    const error = (await rejection(
      (async () => {
        for await (const chunk of stream.count({ n: 1000, delayMs: 20 }, { timeoutMs: 300 })) received.push(chunk);
      })(),
    )) as RpcError;
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(received.length).toBeGreaterThan(3);
    expect(received.length).toBeLessThan(1000);
    const stats = await statsWhen((current) => current.finallyRan > 0, "the generator's finally block");
    expect(stats.finallyRan).toBe(1);
    expect(stats.lastAbortReason).toMatch(/deadline exceeded/);
  });

  it('a call made inside a handler inherits the remaining deadline', async () => {
    const started = Date.now();
    const error = (await rejection(stream.relaySleep({ url: provider.url, ms: 5000 }, { timeoutMs: 300 }))) as RpcError;
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(1000);
    // The nested call to test.Echo.sleep was aborted too, by its own inherited deadline.
    expect(await lastAbort('the nested call to be aborted')).toMatch(/deadline exceeded|cancelled/);
  });

  it('cancelling a call cancels the calls its handler made', async () => {
    const controller = new AbortController();
    const call = stream.relaySleep({ url: provider.url, ms: 5000 }, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort();
    expect(((await rejection(call)) as RpcError).code).toBe(RpcCode.CANCELLED);
    expect(await lastAbort('the nested call to be cancelled')).toMatch(/cancelled by the caller/);
  });
});

describe('provider failure mid-stream', () => {
  it('killing the provider makes the iterator throw UNAVAILABLE, not end silently', async () => {
    const doomed = await startFixture('provider', { PROVIDER_STREAM: '1' });
    const local = await createClient({ registry: doomed.url, config: false });
    const received: unknown[] = [];
    const error = (await rejection(
      (async () => {
        for await (const chunk of local.proxy<StreamApi>('test.Stream').count({ n: 100_000, delayMs: 5 })) {
          received.push(chunk);
          if (received.length === 5) doomed.process.kill('SIGKILL');
        }
      })(),
    )) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(received.length).toBeGreaterThanOrEqual(5);
    await local.close();
    await doomed.stop();
  });
});
