import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, type ClientOptions, type RpcError } from 'shuttle-rpc';
import type { LoadBalancer } from 'shuttle-rpc/spi';
import { EchoService, type EchoApi } from '../fixtures/services.js';

/*
 * A provider whose advertised limit (`maxConcurrentCalls`) this consumer's own calls fill,
 * beside one with room, on the memory registry: every balancer passes the full one over, so
 * nothing is sent there to be refused, and no call fails RESOURCE_EXHAUSTED while room remains.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a provider this consumer fills, beside one with room', () => {
  it.each(['random', 'round-robin'] as const)('%s: gets none of the calls, and none fails', async (loadbalance) => {
    const registry = `memory://full-provider-${loadbalance}`;
    const full = await createServer({ services: [new EchoService()], registry, maxConcurrentCalls: 2, config: false, log: false });
    cleanups.push(() => full.close());
    const roomy = await createServer({ services: [new EchoService()], registry, maxConcurrentCalls: 100, config: false, log: false });
    cleanups.push(() => roomy.close());
    const routed: string[] = [];
    const options: ClientOptions = { registry, loadbalance, config: false, log: false, onRoute: (event) => routed.push(event.decision.provider.address) };
    const client = await createClient(options);
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    // Both providers known and connected.
    for (let i = 0; i < 10; i++) await echo.echo(i);
    // Two long calls of this consumer take the full provider's two slots.
    const pinned = client.proxy<EchoApi>('test.Echo', { version: '1.0.0', url: full.url });
    const holding = [pinned.work({ ms: 1500 }), pinned.work({ ms: 1500 })];
    await new Promise((resolve) => setTimeout(resolve, 100));
    routed.length = 0;
    const fullAddress = full.url.replace(/^shuttle:\/\//, '');
    const failures: unknown[] = [];
    for (let i = 0; i < 40; i++) {
      // Not idempotent: a refusal before the handler is retried once elsewhere, never more.
      await echo.record({ id: `call-${i}`, ms: 1 }).catch((error: unknown) => failures.push(error));
    }
    expect(failures).toEqual([]);
    expect(routed.filter((address) => address === fullAddress)).toEqual([]);
    expect(routed.length).toBe(40);
    await Promise.all(holding);
  });
});

describe('a provider that other consumers fill, beside one with room', () => {
  it("refuses a call that is then retried on the other at once, without waiting for the full one's retryAfterMs", async () => {
    const registry = 'memory://full-provider-hint';
    // A one-slot provider whose refusals ask for 2 s: its slot is held by another consumer.
    const full = await createServer({
      services: [new EchoService()],
      registry,
      filters: [{ type: 'concurrency-limit', options: { max: 1, minRetryAfterMs: 2000, maxRetryAfterMs: 2000 } }],
      config: false,
      log: false,
    });
    cleanups.push(() => full.close());
    const roomy = await createServer({ services: [new EchoService()], registry, config: false, log: false });
    cleanups.push(() => roomy.close());
    const other = await createClient({ registry, config: false, log: false });
    cleanups.push(() => other.close());
    const holding = other.proxy<EchoApi>('test.Echo', { version: '1.0.0', url: full.url }).work({ ms: 3000 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // This consumer's balancer tries the full provider first, as a consumer that cannot know it is full would.
    const fullAddress = full.url.replace(/^shuttle:\/\//, '');
    const fullFirst: LoadBalancer = {
      name: 'full-first',
      select: (providers) => ({ provider: providers.find((view) => view.address === fullAddress) ?? providers[0]!, policy: 'full-first', branch: 'pick' }),
    };
    const routed: string[] = [];
    const client = await createClient({
      registry,
      loadbalance: fullFirst,
      config: false,
      log: false,
      onRoute: (event) => routed.push(event.decision.provider.address),
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const started = performance.now();
    const answered = await echo.work({ ms: 1 }).catch((error: RpcError) => error);
    const tookMs = performance.now() - started;
    expect(answered).toBe(process.pid);
    expect(routed).toEqual([fullAddress, roomy.url.replace(/^shuttle:\/\//, '')]);
    // The refusal and a retry with its jitter (at most baseMs 10), not the 2 s hint (±50 %).
    expect(tookMs).toBeLessThan(500);
    await holding;
  });
});
