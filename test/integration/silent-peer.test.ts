import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RouteEvent, type RpcError } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * A provider that goes silent without closing its socket (SIGSTOP: the kernel still holds the
 * connection open) must be found out by heartbeats, within the heartbeat interval plus its
 * timeout, and its calls in flight must fail UNAVAILABLE then — not hang to their deadlines.
 * A consumer that connects to it only after it stopped must not send it calls at all: the
 * connect succeeds (the kernel accepts), but no frame ever comes back.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a silent provider', () => {
  it('fails the calls in flight UNAVAILABLE within heartbeat interval + timeout, then recovers after SIGCONT', async () => {
    const provider = await startFixture('provider');
    cleanups.push(() => provider.stop());
    const heartbeatIntervalMs = 200;
    const heartbeatTimeoutMs = 300;
    // Breakers and ejection off: this is about the connection alone (the polling below, during
    // the reconnect backoff, would otherwise open the breaker for its reset time).
    const client = await createClient({
      registry: provider.url,
      heartbeatIntervalMs,
      heartbeatTimeoutMs,
      timeoutMs: 10_000,
      cluster: 'failfast',
      circuitBreaker: false,
      outlierEjection: false,
      config: false,
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });

    const inFlight = Array.from({ length: 3 }, () =>
      echo.sleep({ ms: 5000 }).then(
        () => undefined,
        (error: RpcError) => error,
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    provider.process.kill('SIGSTOP');
    cleanups.push(() => provider.process.kill('SIGCONT'));
    const stoppedAt = Date.now();
    const failures = await Promise.all(inFlight);
    const detectedAfter = Date.now() - stoppedAt;
    for (const failure of failures) {
      expect(failure?.code).toBe(RpcCode.UNAVAILABLE);
      expect(failure?.message).toMatch(/heartbeat/i);
    }
    // Detected within interval + timeout (plus scheduling slack), far from the 10 s deadline.
    expect(detectedAfter).toBeLessThan(heartbeatIntervalMs + heartbeatTimeoutMs + 700);

    provider.process.kill('SIGCONT');
    let recovered: unknown;
    await waitUntil(
      async () => (recovered = await echo.add({ a: 2, b: 2 }).catch(() => undefined)) !== undefined,
      'a call to succeed after SIGCONT',
      5000,
      100,
    );
    expect(recovered).toEqual({ sum: 4 });
  });
});

describe('a provider stopped before a consumer first connects to it', () => {
  const connectTimeoutMs = 1000;
  let journal = '';

  async function fleetWithOneStopped(env: Record<string, string> = {}): Promise<{ registry: string; hung: Child }> {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    journal = path.join(tmp.dir, 'journal');
    const registry = `file://${tmp.dir}/registry`;
    const providers: Child[] = [];
    for (let i = 0; i < 3; i++) {
      const child = await startFixture('provider', { SHUTTLE_REGISTRY: registry, PROVIDER_JOURNAL: journal, ...env });
      providers.push(child);
      cleanups.push(() => child.stop());
    }
    const hung = providers[1]!;
    hung.process.kill('SIGSTOP');
    cleanups.push(() => hung.process.kill('SIGCONT'));
    return { registry, hung };
  }

  it('holds no call past connectTimeoutMs, runs none twice, and gets no more calls once its connect is slow', async () => {
    const { registry, hung } = await fleetWithOneStopped();
    const routes: RouteEvent[] = [];
    // Heartbeats far longer than the test: only the connect's own wait may find the provider out.
    const client = await createClient({
      registry,
      connectTimeoutMs,
      heartbeatIntervalMs: 60_000,
      heartbeatTimeoutMs: 60_000,
      timeoutMs: 30_000,
      config: false,
      onRoute: (event) => routes.push(event),
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');

    // A burst before any connection is up: some calls pick the stopped provider and wait for its
    // connect. They are not sent until it answers, so they move elsewhere when it never does.
    const burst = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const started = Date.now();
        // record() is not idempotent: it must run once, wherever it runs.
        await echo.record({ id: `burst-${i}`, ms: 0 });
        return Date.now() - started;
      }),
    );
    expect(Math.max(...burst)).toBeLessThan(connectTimeoutMs + 1500);

    // Paced calls after the burst: none is routed to the stopped provider.
    routes.length = 0;
    const paced: number[] = [];
    for (let i = 0; i < 40; i++) {
      const started = Date.now();
      await echo.add({ a: i, b: 1 });
      paced.push(Date.now() - started);
    }
    const toHung = routes.filter((event) => event.decision.provider.address.endsWith(`:${hung.port}`));
    expect(toHung).toEqual([]);
    expect(Math.max(...paced)).toBeLessThan(500);

    // Resumed, the provider finds nothing of the burst in its socket to run.
    hung.process.kill('SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const runs = (await readFile(journal, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[0]!);
    for (let i = 0; i < 12; i++) expect(runs.filter((id) => id === `burst-${i}`)).toHaveLength(1);
  }, 40_000);

  it.each(['tcp', 'grpc'] as const)(
    '%s: gets no calls once its connect has been under way for a moment, while the connect still waits',
    async (transport) => {
      const { registry, hung } = await fleetWithOneStopped({ PROVIDER_TRANSPORT: transport });
      const routes: Array<{ at: number; address: string }> = [];
      // The default connectTimeoutMs (3 s): the connect to the stopped provider is under way for
      // the whole second of calls below.
      const client = await createClient({
        registry,
        transport,
        timeoutMs: 30_000,
        config: false,
        onRoute: (event) => routes.push({ at: Date.now(), address: event.decision.provider.address }),
      });
      cleanups.push(() => client.close());
      const echo = client.proxy<EchoApi>('test.Echo');
      const calls: Array<Promise<unknown>> = [];
      const started = Date.now();
      while (Date.now() - started < 1000) {
        calls.push(echo.add({ a: 1, b: 1 }));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await Promise.all(calls);
      const toHung = routes.filter((route) => route.address.endsWith(`:${hung.port}`));
      // The calls picked it before its connect was seen to be slow (100 ms), and no later.
      expect(toHung.length).toBeGreaterThan(0);
      const last = Math.max(...toHung.map((route) => route.at - started));
      expect(last).toBeLessThan(600);
    },
    40_000,
  );

  it('with nothing else to call, fails UNAVAILABLE never sent, saying the provider accepted and answered nothing', async () => {
    const provider = await startFixture('provider');
    cleanups.push(() => provider.stop());
    provider.process.kill('SIGSTOP');
    cleanups.push(() => provider.process.kill('SIGCONT'));
    const client = await createClient({ registry: provider.url, connectTimeoutMs, timeoutMs: 30_000, cluster: 'failfast', config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const started = Date.now();
    const error = (await echo.add({ a: 1, b: 1 }).then(
      () => undefined,
      (failure: RpcError) => failure,
    )) as RpcError | undefined;
    expect(Date.now() - started).toBeLessThan(connectTimeoutMs + 1500);
    expect(error?.code).toBe(RpcCode.UNAVAILABLE);
    expect(error?.details?.['neverSent']).toBe(true);
    expect(error?.details?.['maybeExecuted']).toBeUndefined();
    expect(error?.message).toMatch(/accepted the connection but answered nothing within 1000 ms \(connectTimeoutMs\)/);
  }, 40_000);
});
