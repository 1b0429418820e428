import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, callOutcome, createClient, type ClientOptions, type RouteEvent, type RpcError } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import type { StreamApi } from '../fixtures/stream-service.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * Faults under load, with providers in their own processes on the file registry (the default
 * one, in a temporary folder): a provider SIGKILLed, restarted one by one, all failing, hung,
 * overloaded. Every load loop is bounded in time.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fleet(count: number, env: Record<string, string> = {}): Promise<{ registry: string; dir: string; providers: Child[]; start(): Promise<Child> }> {
  const tmp = await tempDir();
  cleanups.push(tmp.remove);
  const registry = `file://${tmp.dir}/registry`;
  const providers: Child[] = [];
  const start = async (): Promise<Child> => {
    const child = await startFixture('provider', { SHUTTLE_REGISTRY: registry, PROVIDER_JOURNAL: path.join(tmp.dir, 'journal'), PROVIDER_STREAM: '1', ...env });
    providers.push(child);
    cleanups.push(() => child.stop());
    return child;
  };
  for (let i = 0; i < count; i++) await start();
  return { registry, dir: tmp.dir, providers, start };
}

async function consumer(
  registry: string,
  options: ClientOptions = {},
): Promise<{ echo: ReturnType<typeof proxy>; attempts: RouteEvent[]; client: Awaited<ReturnType<typeof createClient>> }> {
  const attempts: RouteEvent[] = [];
  const client = await createClient({ registry, timeoutMs: 5000, config: false, onRoute: (event) => attempts.push(event), ...options });
  cleanups.push(() => client.close());
  const proxy = () => client.proxy<EchoApi>('test.Echo');
  const echo = proxy();
  // Wait until the consumer sees the whole fleet.
  for (let i = 0; i < 50; i++) {
    if ((await echo.pid().catch(() => 0)) !== 0) break;
  }
  return { echo, attempts, client };
}

/** Runs `workers` loops of `call` for `ms` (a bounded load); returns every outcome. */
async function load(workers: number, ms: number, call: (worker: number, i: number) => Promise<unknown>): Promise<{ calls: number; errors: RpcError[] }> {
  const until = Date.now() + ms;
  let calls = 0;
  const errors: RpcError[] = [];
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let i = 0; Date.now() < until && i < 100_000; i++) {
        calls++;
        await call(worker, i).catch((error: RpcError) => errors.push(error));
      }
    }),
  );
  return { calls, errors };
}

describe('fault tolerance under load', () => {
  it('SIGKILL of one of 3 providers: no failed idempotent call, no duplicate execution, attempts / calls <= 1.1', async () => {
    const { registry, dir, providers } = await fleet(3);
    const { echo, attempts } = await consumer(registry);
    attempts.length = 0;
    setTimeout(() => providers[0]!.process.kill('SIGKILL'), 1500);
    let idempotent = 0;
    const idempotentErrors: RpcError[] = [];
    const nonIdempotentErrors: RpcError[] = [];
    const { calls } = await load(12, 3500, async (worker, i) => {
      if (i % 2 === 0) {
        idempotent++;
        await echo.work({ ms: 20 }).catch((error: RpcError) => idempotentErrors.push(error));
      } else {
        await echo.record({ id: `${worker}-${i}`, ms: 20 }).catch((error: RpcError) => nonIdempotentErrors.push(error));
      }
    });
    const journal = (await readFile(path.join(dir, 'journal'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[0]!);
    const duplicates = journal.filter((id, index) => journal.indexOf(id) !== index);
    console.log(
      `SIGKILL: ${calls} calls, ${attempts.length} attempts (${(attempts.length / calls).toFixed(3)}), ` +
        `${idempotentErrors.length}/${idempotent} idempotent failed, ${nonIdempotentErrors.length} non-idempotent failed (${nonIdempotentErrors.map((error) => callOutcome(error)).join(', ')})`,
    );
    expect(idempotentErrors.map((error) => error.message)).toEqual([]);
    expect(duplicates).toEqual([]);
    // A non-idempotent call caught on the dying provider fails, marked maybe-executed, and is not re-sent.
    for (const error of nonIdempotentErrors) expect(callOutcome(error)).toBe('maybe-executed');
    expect(attempts.length / calls).toBeLessThanOrEqual(1.1);
    expect(calls).toBeGreaterThan(300);
  });

  it('a rolling restart with graceful shutdown fails no call and truncates no stream', async () => {
    const { registry, providers, start } = await fleet(3);
    // This test is about draining; a higher retry budget covers the calls that race a GOAWAY.
    const { echo, client } = await consumer(registry, { retryBudget: { ratio: 0.5 } });
    const streams = client.proxy<StreamApi>('test.Stream');
    let restarting = true;
    const restarts = (async () => {
      try {
        for (const old of [...providers]) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          await start();
          await old.stop(15_000);
        }
      } finally {
        restarting = false;
      }
    })();
    // The load loops end with the restarts, or at this bound if the restarts hang; a failed call
    // yields a turn before the next, so calls that fail at once cannot starve the timers.
    const until = Date.now() + 50_000;
    const going = (): boolean => restarting && Date.now() < until;
    const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const results = { calls: 0, failed: [] as string[], streams: 0, truncated: [] as string[] };
    await Promise.all([
      ...Array.from({ length: 6 }, async () => {
        while (going()) {
          results.calls++;
          await echo.work({ ms: 2000 }).catch(async (error: RpcError) => {
            results.failed.push(error.message);
            await nextTurn();
          });
        }
      }),
      ...Array.from({ length: 3 }, async () => {
        while (going()) {
          results.streams++;
          const call = streams.count({ n: 40, delayMs: 50 });
          let received = 0;
          try {
            for await (const _chunk of call) received++;
            const trailer = (await call.trailer) as { count: number };
            if (received !== 40 || trailer.count !== 40) results.truncated.push(`${received} chunks, trailer ${JSON.stringify(trailer)}`);
          } catch (error) {
            results.truncated.push(`${received} chunks then ${(error as Error).message}`);
            await nextTurn();
          }
        }
      }),
    ]);
    expect(restarting).toBe(false);
    await restarts;
    console.log(`rolling restart: ${results.calls} calls of 2 s, ${results.streams} streams`);
    expect(results.failed).toEqual([]);
    expect(results.truncated).toEqual([]);
    expect(results.calls).toBeGreaterThan(12);
  }, 60_000);

  it('all providers failing: attempts / calls <= 1.1, breakers open, one half-open probe per provider per reset period', async () => {
    const { registry, providers } = await fleet(3);
    const resetTimeoutMs = 400;
    const { echo, attempts } = await consumer(registry, { circuitBreaker: { volumeThreshold: 5, resetTimeoutMs }, outlierEjection: false });
    const observer = await createClient({ registry, circuitBreaker: false, outlierEjection: false, config: false });
    cleanups.push(() => observer.close());
    const counts = async (): Promise<number[]> =>
      Promise.all(
        providers.map((provider) =>
          observer
            .proxy<EchoApi>('test.Echo', { url: provider.url })
            .invocations()
            .then((invocations) => invocations['flaky'] ?? 0),
        ),
      );
    // The consumer's warm-up calls (one attempt each) earned budget too: count them as calls.
    const earlier = attempts.length;
    const warm = await load(8, 500, () => echo.flaky());
    const before = await counts();
    const measured = 4 * resetTimeoutMs;
    const steady = await load(8, measured, () => echo.flaky());
    const after = await counts();
    const calls = earlier + warm.calls + steady.calls;
    const probes = after.map((count, i) => count - before[i]!);
    console.log(`all failing: ${calls} calls, ${attempts.length} attempts; provider executions per ${measured} ms with breakers open: ${probes.join(', ')}`);
    expect(attempts.length / calls).toBeLessThanOrEqual(1.1);
    expect([...warm.errors, ...steady.errors].every((error) => error.code === RpcCode.UNAVAILABLE)).toBe(true);
    expect(steady.errors.some((error) => error.details?.['breakerOpen'] === true)).toBe(true);
    // One probe per reset period (4 periods measured; the boundary may add one).
    for (const count of probes) expect(count).toBeLessThanOrEqual(measured / resetTimeoutMs + 1);
  });

  it('a hung provider (stopped, still accepting) is found out and its calls succeed elsewhere within their deadline', async () => {
    const { registry, providers } = await fleet(3);
    const { echo, attempts } = await consumer(registry, { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 300, retryBudget: { ratio: 0.2 } });
    await load(6, 500, () => echo.work({ ms: 5 }));
    const hung = providers[1]!;
    hung.process.kill('SIGSTOP');
    cleanups.push(() => hung.process.kill('SIGCONT'));
    attempts.length = 0;
    const started = Date.now();
    const result = await load(6, 3000, () => echo.work({ ms: 5 }, { timeoutMs: 2500 }));
    const late = attempts.filter((event) => event.decision.provider.address.endsWith(`:${hung.port}`)).length;
    console.log(`hung provider: ${result.calls} calls, ${result.errors.length} failed, ${late} attempts routed to the hung one in ${Date.now() - started} ms`);
    expect(result.errors.map((error) => error.message)).toEqual([]);
    expect(late).toBeLessThan(result.calls / 20);
  });

  it('overload at 3x the slot limit: rejections come back fast and are retried elsewhere at most once', async () => {
    const { registry, providers } = await fleet(3, { PROVIDER_MAX_CONCURRENT: '2' });
    // Round-robin deals the burst out 6, 6, 6; the default (random) leaves a provider with one
    // call or none about one time in fifty, and then more than 12 are refused.
    const fast = await consumer(registry, { cluster: 'failfast', loadbalance: 'round-robin' });
    // Connect to every provider first, so that what is timed below is the refusal only.
    for (let i = 0; i < 30; i++) await fast.echo.pid();
    // 18 calls on 6 slots: 12 are refused at once by the providers' concurrency limit.
    const burst = await Promise.all(
      Array.from({ length: 18 }, () =>
        fast.echo.work({ ms: 1500 }).then(
          () => undefined,
          (failure: RpcError) => failure,
        ),
      ),
    );
    const refusedInBurst = burst.filter((error): error is RpcError => error !== undefined);
    expect(refusedInBurst.length).toBe(12);
    for (const error of refusedInBurst) {
      expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
      expect(error.retryAfterMs).toBeGreaterThan(0);
    }
    // With every slot taken (the 6 accepted calls run 1.5 s), each further call is refused on
    // its own: time those one at a time, so the number is a refusal's latency, not a burst's.
    const accepted = Promise.all(
      providers.flatMap((provider) => [0, 1].map(() => fast.client.proxy<EchoApi>('test.Echo', { url: provider.url }).work({ ms: 1500 }))),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const timings: number[] = [];
    for (let i = 0; i < 12; i++) {
      const started = performance.now();
      const error = await fast.echo.work({ ms: 10 }).then(
        () => undefined,
        (failure: RpcError) => failure,
      );
      if (error?.code === RpcCode.RESOURCE_EXHAUSTED) timings.push(performance.now() - started);
    }
    timings.sort((a, b) => a - b);
    console.log(`overload: ${refusedInBurst.length} of 18 refused in a burst; single refusals ${timings.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    expect(timings.length).toBe(12);
    // A refusal does not wait for a slot (1.5 s): a few ms, with room for a loaded machine.
    expect(timings[Math.floor(timings.length / 2)]!).toBeLessThan(20);
    expect(timings.at(-1)!).toBeLessThan(150);
    await accepted;
    const retrying = await consumer(registry);
    retrying.attempts.length = 0;
    await Promise.all(Array.from({ length: 18 }, () => retrying.echo.work({ ms: 300 }).catch(() => {})));
    expect(Math.max(...retrying.attempts.map((event) => event.attempt))).toBeLessThanOrEqual(2);
  });
});

describe('consumer-side limits', () => {
  it('maxCallsPerProvider refuses locally, before sending, and failover uses another provider', async () => {
    const { registry } = await fleet(2);
    const { echo } = await consumer(registry, { maxCallsPerProvider: 2, loadbalance: 'round-robin' });
    // 4 concurrent slow calls over 2 providers at 2 each: all fit; a 5th is refused locally.
    const running = Array.from({ length: 4 }, () => echo.work({ ms: 300 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = (await echo.work({ ms: 1 }).catch((error: RpcError) => error)) as RpcError;
    expect(refused.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatchObject({ neverSent: true, local: true });
    await Promise.all(running);
    expect(typeof (await echo.work({ ms: 1 }))).toBe('number');
  });
});
