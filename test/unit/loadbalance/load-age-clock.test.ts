import { afterEach, describe, expect, it, vi } from 'vitest';
import { environmentOption } from '../../../src/loadbalance/environment.js';
import { estimateLoad } from '../../../src/loadbalance/load-score.js';
import { LoadView } from '../../../src/registry/etcd/load-view.js';
import { RegistryInputGuard } from '../../../src/registry/input-guard.js';
import { MemoryRegistry } from '../../../src/registry/memory.js';
import type { LoadSnapshot } from '../../../src/registry/registry.js';
import { view } from '../../helpers/lb.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

/*
 * A load report's age is judged by when this consumer received it, on a clock the wall clock's
 * steps do not move: a report is trusted on arrival and not at all after `staleAfterMs`, whatever
 * the wall clock did in between, and whatever the provider's clock says.
 */
afterEach(() => vi.restoreAllMocks());

const options = { staleAfterMs: 100, prefillTokensPerSecond: 20_000 };
const busy = (timestamp: number): Omit<LoadSnapshot, 'receivedAt'> => ({
  timestamp,
  running: 8,
  waiting: 4,
  waitingUncachedTokens: 0,
  kvUsage: 0.5,
  tokensPerSecond: 100,
  draining: false,
});

/** The trust a balancer with the default clock puts in `load` now. */
function trust(load: LoadSnapshot | undefined): number {
  const now = environmentOption('p2c', {}).now();
  return estimateLoad(view(1, load === undefined ? {} : { load }), now, options).trust;
}

/** A snapshot as the etcd registry's load channel stamps it on arrival. */
function arrivedFromEtcd(timestamp: number): LoadSnapshot | undefined {
  const loads = new LoadView('/load/', new RegistryInputGuard('etcd://test', () => {}));
  const key = `/load/${encodeURIComponent('10.0.0.1:1')}`;
  loads.apply(new Map([[key, JSON.stringify(busy(timestamp))]]), [key]);
  return loads.get('10.0.0.1:1');
}

describe('load-report ageing across a wall-clock step', () => {
  it('back by an hour: a report that stopped coming goes stale after staleAfterMs, not an hour later', async () => {
    const load = arrivedFromEtcd(Date.now());
    expect(trust(load)).toBeGreaterThan(0.9);
    stepWallClock(-HOUR_MS);
    await sleep(150);
    expect(trust(load)).toBe(0);
  });

  it('forward by an hour: a report that just arrived is trusted', () => {
    const load = arrivedFromEtcd(Date.now());
    stepWallClock(HOUR_MS);
    expect(trust(load)).toBeGreaterThan(0.5);
  });

  it("from a provider whose clock is an hour ahead or behind: aged by its arrival here, not by the provider's timestamp", async () => {
    for (const skew of [HOUR_MS, -HOUR_MS]) {
      const load = arrivedFromEtcd(Date.now() + skew);
      expect(trust(load)).toBeGreaterThan(0.5);
      await sleep(150);
      expect(trust(load)).toBe(0);
    }
  });

  it('the memory registry stamps arrival on the same clock', async () => {
    const registry = new MemoryRegistry();
    const record = view(1).instance;
    await registry.register(record);
    await registry.reportLoad('10.0.0.1:1', busy(Date.now()));
    let load: LoadSnapshot | undefined;
    const subscription = await registry.subscribe({ service: record.service, version: record.version, group: '' }, (instances) => {
      load = instances[0]?.load;
    });
    subscription.close();
    expect(trust(load)).toBeGreaterThan(0.9);
    stepWallClock(-HOUR_MS);
    await sleep(150);
    expect(trust(load)).toBe(0);
  });
});
