import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, type ClientOptions } from 'shuttle-rpc';
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
