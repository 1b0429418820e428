import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type Proxied, type RouteEvent } from 'shuttle-rpc';
import type { MixedApi } from '../fixtures/mixed-speed-provider.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * The stall rule on a fleet of four inference-like provider processes (file registry), each
 * running a slow unary method (`generate`, seconds) and a fast one (`embed`, 2 ms). Every
 * provider has a slow call waiting most of the time; that must not make it look hung to the
 * fast calls. Every load loop is bounded in count and time.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Four providers; the first one's handlers all hang when `firstHung`. */
async function fleet(firstHung: boolean): Promise<{ registry: string; children: Child[] }> {
  const tmp = await tempDir();
  cleanups.push(tmp.remove);
  const registry = `file://${tmp.dir}/registry`;
  const children = await Promise.all(
    [0, 1, 2, 3].map((i) => startFixture('mixed-speed-provider', { SHUTTLE_REGISTRY: registry, MIXED_HUNG: firstHung && i === 0 ? '1' : '0' })),
  );
  for (const child of children) cleanups.push(() => child.stop());
  return { registry, children };
}

async function consumer(registry: string, loadbalance: string): Promise<{ mixed: Proxied<MixedApi>; routes: RouteEvent[] }> {
  const routes: RouteEvent[] = [];
  const client = await createClient({ registry, loadbalance, timeoutMs: 20_000, config: false, onRoute: (event) => routes.push(event) });
  cleanups.push(() => client.close());
  const mixed = client.proxy<MixedApi>('test.Mixed');
  // Until the consumer sees the whole fleet.
  for (let i = 0; i < 100 && new Set(routes.map((event) => event.decision.provider.address)).size < 4; i++) {
    await Promise.all(Array.from({ length: 8 }, () => mixed.ping().catch(() => 0)));
    await sleep(50);
  }
  routes.length = 0;
  return { mixed, routes };
}

/** The providers of `method`'s routes, by address. */
function counts(routes: readonly RouteEvent[], method: string): Map<string, number> {
  const byAddress = new Map<string, number>();
  for (const event of routes) {
    if (event.method !== method) continue;
    const address = event.decision.provider.address;
    byAddress.set(address, (byAddress.get(address) ?? 0) + 1);
  }
  return byAddress;
}

describe('the stall rule, per method, on a fleet with slow and fast calls', () => {
  it.each(['round-robin', 'random'])(
    '%s: fast calls after a lull spread over the fleet while every provider has a slow call waiting (no burst lands on one provider)',
    async (loadbalance) => {
      const { registry } = await fleet(false);
      const { mixed, routes } = await consumer(registry, loadbalance);
      // Slow calls on every provider (8 s, none answers during the bursts), then bursts of fast
      // calls, each after a lull longer than the rule's 1 s floor.
      const slow = Array.from({ length: 12 }, () => mixed.generate({ ms: 8000 }).catch(() => 0));
      const bursts: Array<Map<string, number>> = [];
      for (let burst = 0; burst < 3; burst++) {
        await sleep(1300);
        const before = routes.length;
        for (let i = 0; i < 16; i++) {
          await mixed.embed();
          await sleep(15);
        }
        bursts.push(counts(routes.slice(before), 'embed'));
      }
      // Each burst's share on its busiest provider: all of it (16 of 16) when the first fast
      // answer makes the others, silent with slow calls waiting, look hung; about a quarter when
      // fast calls are judged by fast calls.
      for (const burst of bursts) {
        expect([...burst.values()].reduce((a, b) => a + b, 0)).toBe(16);
        expect(Math.max(...burst.values())).toBeLessThanOrEqual(loadbalance === 'random' ? 10 : 6);
        expect(burst.size).toBeGreaterThanOrEqual(3);
      }
      await Promise.all(slow);
    },
    40_000,
  );

  it('a provider whose handlers all hang is still passed over, for the fast calls and the slow ones, while the others run slow calls', async () => {
    const { registry, children } = await fleet(true);
    const { mixed, routes } = await consumer(registry, 'round-robin');
    const hung = `${children[0]!.host}:${children[0]!.port}`;
    // 50 calls a second for 4 s, one in three a slow one (3 s): every provider busy with both.
    const calls: Array<Promise<unknown>> = [];
    const until = Date.now() + 4000;
    for (let i = 0; Date.now() < until && i < 400; i++) {
      const call = i % 3 === 0 ? mixed.generate({ ms: 3000 }, { timeoutMs: 6000 }) : mixed.embed(undefined, { timeoutMs: 3000 });
      calls.push(call.catch(() => undefined));
      await sleep(20);
    }
    await Promise.all(calls);
    const share = (method: string) => (counts(routes, method).get(hung) ?? 0) / Math.max(1, routes.filter((event) => event.method === method).length);
    // Without the rule: a quarter of each.
    expect(routes.length).toBeGreaterThan(150);
    expect(share('embed')).toBeLessThan(0.15);
    expect(share('generate')).toBeLessThan(0.15);
  }, 40_000);
});
