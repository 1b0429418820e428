import { afterEach, describe, expect, it, vi } from 'vitest';
import { Directory } from '../../../src/client/directory.js';
import { environmentOption } from '../../../src/loadbalance/environment.js';
import { estimateLoad } from '../../../src/loadbalance/load-score.js';
import { effectiveWeight } from '../../../src/loadbalance/weights.js';
import { MemoryRegistry } from '../../../src/registry/memory.js';
import type { Registry, ServiceInstance } from '../../../src/registry/registry.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { view } from '../../helpers/lb.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

/*
 * The warm-up ramps a provider's weight with its uptime. Its start time is stated by its own
 * clock, which may be an hour off the consumer's, and the consumer's clock may step: neither may
 * hold a provider at the minimum weight for an hour.
 */
afterEach(() => vi.restoreAllMocks());

const WARMUP_MS = 200;

async function weightsAfterWarmup(startTimes: readonly number[], during?: () => void): Promise<number[]> {
  const registry = new MemoryRegistry();
  for (const [index, startTime] of startTimes.entries()) await registry.register(providerRecord(index + 1, { startTime }));
  const directory = new Directory(registry, { service: 'test.Echo' }, 'tcp', () => {});
  await directory.ready();
  during?.();
  await sleep(WARMUP_MS + 100);
  const now = environmentOption('random', {}).now();
  const weights = [...directory.instances].sort((a, b) => a.port - b.port).map((instance) => effectiveWeight(instance, now, WARMUP_MS));
  directory.close();
  return weights;
}

describe('warm-up across clocks', () => {
  it('a provider whose clock is an hour ahead reaches full weight after the warm-up, not an hour later', async () => {
    expect(await weightsAfterWarmup([Date.now() + HOUR_MS])).toEqual([100]);
  });

  it('a provider whose clock is an hour behind, or that has run an hour, has its full weight', async () => {
    expect(await weightsAfterWarmup([Date.now() - HOUR_MS])).toEqual([100]);
  });

  it("the consumer's wall clock stepping back by an hour does not throw a warmed-up provider back to the minimum", async () => {
    expect(await weightsAfterWarmup([Date.now()], () => stepWallClock(-HOUR_MS))).toEqual([100]);
  });

  it('a provider seen just now ramps from its stated start on this clock', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1, { startTime: Date.now() }));
    const directory = new Directory(registry, { service: 'test.Echo' }, 'tcp', () => {});
    await directory.ready();
    const now = environmentOption('random', {}).now();
    expect(effectiveWeight(directory.instances[0]!, now, 60_000)).toBeLessThan(10);
    directory.close();
  });
});

describe('load snapshots from a registry that does not stamp their arrival', () => {
  it("are aged from their arrival here, not by the provider's clock an hour ahead", async () => {
    const load = { timestamp: Date.now() + HOUR_MS, running: 8, waiting: 4, waitingUncachedTokens: 0, kvUsage: 0.5, tokensPerSecond: 100, draining: false };
    const record = providerRecord(1, { load });
    const plugin = {
      subscribe: async (_query: unknown, listener: (instances: readonly ServiceInstance[]) => void) => {
        listener([record]);
        return { close: () => {} };
      },
    } as unknown as Registry;
    const directory = new Directory(plugin, { service: 'test.Echo' }, 'tcp', () => {});
    await directory.ready();
    const trust = (): number =>
      estimateLoad(view(1, { load: directory.instances[0]!.load! }), environmentOption('p2c', {}).now(), { staleAfterMs: 100, prefillTokensPerSecond: 20_000 })
        .trust;
    expect(trust()).toBeGreaterThan(0.5);
    await sleep(150);
    expect(trust()).toBe(0);
    directory.close();
  });
});
