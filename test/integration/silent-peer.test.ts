import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcError } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * A provider that goes silent without closing its socket (SIGSTOP: the kernel still holds the
 * connection open) must be found out by heartbeats, within the heartbeat interval plus its
 * timeout, and its calls in flight must fail UNAVAILABLE then — not hang to their deadlines.
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
