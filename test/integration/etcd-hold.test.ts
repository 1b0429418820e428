import { describe, expect, it } from 'vitest';
import type { ServiceInstance } from 'shuttle-rpc';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { watchView } from '../helpers/view.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The etcd registry against someone who can write under its prefix while providers live:
 * deleting a provider's keys, and flooding the load channel with snapshots (draining or not)
 * for addresses nobody lists. Real etcd started by the suite, registries in this process.
 */
const TTL = 2;
const suite = etcdSuite();
const { cleanups } = suite;

function registry(options: Record<string, unknown> = {}): EtcdRegistry {
  const created = createEtcdRegistry({ url: suite.etcd.url, ttlSeconds: TTL, requestTimeoutMs: 1000, ...options }) as EtcdRegistry;
  cleanups.push(() => created.close());
  return created;
}
const recordKey = (port: number): string => `/shuttle/services/test.Echo/1.0.0/_/10.0.0.1%3A${port}`;
const loadKey = (address: string): string => `/shuttle/load/${encodeURIComponent(address)}`;
const load = (draining: boolean): string =>
  JSON.stringify({ timestamp: Date.now(), running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining });
/** The lease a key is on ('0' for none), or undefined when the key is missing. */
async function leaseOf(key: string): Promise<string | undefined> {
  const found = await suite.admin.get(key).exec();
  return found.kvs[0]?.lease;
}
function swallowWarnings(): string[] {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning.message);
  process.on('warning', onWarning);
  cleanups.push(() => process.off('warning', onWarning));
  return warnings;
}

describe("etcd registry: a provider's keys come back while its lease lives", () => {
  // The check runs after a keep-alive (every TTL/3), at most once a second.
  const boundMs = Math.max(1000, (TTL * 1000) / 3) + 2000;

  it('a record and load key deleted by someone else are written back on the same lease within a keep-alive', async () => {
    const warnings = swallowWarnings();
    const provider = registry();
    await provider.register(providerRecord(5001));
    await provider.reportLoad('10.0.0.1:5001', JSON.parse(load(false)));
    const lease = await leaseOf(recordKey(5001));
    expect(lease).toBeDefined();
    expect(lease).not.toBe('0');
    const view = await watchView(registry(), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((instances) => instances.length === 1, 'the consumer to see the provider');

    const deletedAt = Date.now();
    // Both in one request, so that one check finds both gone.
    await suite.admin.delete().prefix('/shuttle/').exec();
    await view.until((instances) => instances.length === 0, 'the consumer to see the record deleted');
    await waitUntil(async () => (await leaseOf(recordKey(5001))) !== undefined, 'the record to be written back', boundMs, 50);
    expect(Date.now() - deletedAt).toBeLessThan(boundMs);
    await waitUntil(async () => (await leaseOf(loadKey('10.0.0.1:5001'))) !== undefined, 'the load to be written back', boundMs, 50);
    expect(await leaseOf(recordKey(5001))).toBe(lease);
    expect(await leaseOf(loadKey('10.0.0.1:5001'))).toBe(lease);
    await view.until((instances) => instances.length === 1 && instances[0]!.load !== undefined, 'the consumer to see the provider again, with its load');
    expect(provider.restoredKeys).toBe(2);
    expect(warnings.some((warning) => warning.includes('deleted, or moved off its lease, by someone else'))).toBe(true);

    // Put again off the lease (a value that would outlive the provider): back on the lease, with the provider's value.
    await suite.admin
      .put(recordKey(5001))
      .value(JSON.stringify(providerRecord(5001, { weight: 1 })))
      .exec();
    await waitUntil(async () => (await leaseOf(recordKey(5001))) === lease, 'the record to be back on the lease', boundMs, 50);
    expect(JSON.parse((await suite.admin.get(recordKey(5001)).string()) ?? '')).toEqual(providerRecord(5001));
  });

  it('a deleter that never stops gets at most one write-back per key per keep-alive, and an unregistered key stays gone', async () => {
    swallowWarnings();
    const provider = registry();
    await provider.register(providerRecord(6001));
    await provider.register(providerRecord(6002));
    const seconds = 3;
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await suite.admin.delete().prefix('/shuttle/services/').exec();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // One check per second at most, each writing back the two keys.
    expect(provider.restoredKeys).toBeGreaterThanOrEqual(2);
    expect(provider.restoredKeys).toBeLessThanOrEqual(2 * (seconds + 1));
    await waitUntil(
      async () => (await leaseOf(recordKey(6001))) !== undefined && (await leaseOf(recordKey(6002))) !== undefined,
      'both records back',
      boundMs,
      50,
    );

    await provider.unregister(providerRecord(6002));
    await new Promise((resolve) => setTimeout(resolve, boundMs));
    expect(await leaseOf(recordKey(6002))).toBeUndefined();
    expect(await leaseOf(recordKey(6001))).toBeDefined();
  });
});

describe('etcd registry: a flood on the load channel costs what it names', () => {
  it('snapshots for addresses no record names — draining or not — rebuild no list; a listed provider turning draining is passed on at once', async () => {
    swallowWarnings();
    const provider = registry();
    await provider.register(providerRecord(7001));
    const consumer = registry();
    const lists: Array<readonly ServiceInstance[]> = [];
    const subscription = await consumer.subscribe({ service: 'test.Echo' }, (instances) => void lists.push(instances));
    cleanups.push(() => subscription.close());
    await waitUntil(() => lists.at(-1)?.length === 1, 'the consumer to see the provider');
    // Changes reach a subscriber at most every 50 ms: one more list may still be on its way
    // (the provider's own writes after its record). Counted from when none has come for 200 ms.
    let quietFrom = { count: lists.length, at: Date.now() };
    await waitUntil(
      () => {
        if (lists.length !== quietFrom.count) quietFrom = { count: lists.length, at: Date.now() };
        return Date.now() - quietFrom.at >= 200;
      },
      'the lists to settle',
      5000,
      10,
    );
    const before = lists.length;

    // 600 snapshots for addresses nobody lists, draining and not, in batches as the probe sends them.
    for (let batch = 0; batch < 12; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => {
          const n = batch * 50 + i;
          return suite.admin
            .put(loadKey(`127.9.${n >> 8}.${n & 255}:1`))
            .value(load(n % 2 === 0))
            .exec();
        }),
      );
    }
    // Then the listed provider drains: written after the flood, so seen after all of it.
    const drainedAt = Date.now();
    await suite.admin.put(loadKey('10.0.0.1:7001')).value(load(true)).exec();
    await waitUntil(() => lists.at(-1)?.[0]?.load?.draining === true, 'the consumer to see the provider draining', 2000, 2);
    expect(Date.now() - drainedAt).toBeLessThan(500);
    // Only the drain rebuilt the list (the flood itself: none).
    expect(lists.length - before).toBe(1);
  });
});
