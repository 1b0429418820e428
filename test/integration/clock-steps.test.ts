import { afterEach, describe, expect, it, vi } from 'vitest';
import { RpcCode, createClient, createServer, type AttemptEvent, type RpcError } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { startFixture } from '../helpers/process.js';
import { HOUR_MS, sleep, stepWallClock } from '../helpers/wall-clock.js';

/*
 * The wall clock of the consumer's (and, in one process, the provider's) host steps by an hour
 * while calls run — NTP correcting a bad clock, a VM resumed from suspend — and nothing measured
 * in real time changes: deadlines, heartbeats and call timings.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const settle = (call: Promise<unknown>): Promise<unknown> =>
  call.then(
    (value) => value,
    (error: RpcError) => error,
  );

async function inProcess(name: string, clientOptions: Record<string, unknown> = {}) {
  const registry = `memory://clock-steps-${name}-${process.pid}`;
  const server = await createServer({ services: [new EchoService()], registry });
  cleanups.push(() => server.close());
  const client = await createClient({ registry, config: false, ...clientOptions });
  cleanups.push(() => client.close());
  return client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
}

describe('a wall-clock step while calls run', () => {
  it('forward by an hour: a call with seconds left is not expired when the provider times another call', async () => {
    const echo = await inProcess('forward');
    expect(await echo.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
    const long = settle(echo.sleep({ ms: 400 }, { timeoutMs: 5000 }));
    await sleep(50);
    stepWallClock(HOUR_MS);
    // A second call with a short deadline makes the provider's deadline timer look at every call.
    const short = settle(echo.sleep({ ms: 2000 }, { timeoutMs: 100 }));
    expect(((await short) as RpcError).code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(await long).toEqual({ aborted: false });
  });

  it('back by an hour: the attempt timings reported (and fed to latency histograms) are real, never negative', async () => {
    const attempts: AttemptEvent[] = [];
    const echo = await inProcess('timings', { onAttempt: (event: AttemptEvent) => attempts.push(event) });
    const call = echo.sleep({ ms: 200 }, { timeoutMs: 5000 });
    await sleep(50);
    stepWallClock(-HOUR_MS);
    expect(await call).toEqual({ aborted: false });
    const seconds = attempts.at(-1)?.seconds ?? Number.NaN;
    expect(seconds).toBeGreaterThanOrEqual(0.15);
    expect(seconds).toBeLessThan(2);
  });

  it('back by an hour: a provider that goes silent is still found out by heartbeats, not left to the deadline', async () => {
    const provider = await startFixture('provider');
    cleanups.push(() => provider.stop());
    const heartbeatIntervalMs = 200;
    const heartbeatTimeoutMs = 300;
    const client = await createClient({
      registry: provider.url,
      heartbeatIntervalMs,
      heartbeatTimeoutMs,
      timeoutMs: 4000,
      cluster: 'failfast',
      circuitBreaker: false,
      outlierEjection: false,
      config: false,
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    const inFlight = settle(echo.sleep({ ms: 3500 }));
    await sleep(50);
    provider.process.kill('SIGSTOP');
    cleanups.push(() => provider.process.kill('SIGCONT'));
    // Stepped once the provider can send nothing more: its last bytes arrived before the step.
    stepWallClock(-HOUR_MS);
    const started = performance.now();
    const failure = (await inFlight) as RpcError;
    expect(failure.code).toBe(RpcCode.UNAVAILABLE);
    expect(failure.message).toMatch(/heartbeat/i);
    expect(performance.now() - started).toBeLessThan(heartbeatIntervalMs + heartbeatTimeoutMs + 1000);
  });
});
