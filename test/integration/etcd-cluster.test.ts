import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSteadyConsumer } from '../helpers/consumer-process.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { startFixture } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The etcd registry on a real 3-member etcd cluster on loopback (`etcd://h1,h2,h3`), with a
 * provider process and a consumer process calling it at a steady rate (one call every 20 ms)
 * while members are killed: the leader alone, then two of three for 20 s (quorum lost).
 */
const TTL = 2;
let cluster: EtcdCluster;
let admin: Etcd3;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  cluster = await startEtcdCluster();
  admin = new Etcd3({ hosts: [...cluster.endpoints] });
}, 60_000);
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  admin?.close();
  await cluster?.remove();
});

/** The provider's service keys, read from any member that answers (undefined without quorum). */
async function serviceKeys(): Promise<string[] | undefined> {
  return admin
    .getAll()
    .prefix('/shuttle/services/')
    .keys()
    .catch(() => undefined);
}

async function steadyFleet(): Promise<{ finish: () => ReturnType<Awaited<ReturnType<typeof startSteadyConsumer>>['finish']>; keys: string[] }> {
  const worker = await startFixture('provider', { SHUTTLE_REGISTRY: cluster.url, PROVIDER_TTL: String(TTL) });
  cleanups.push(() => worker.stop());
  const consumer = await startSteadyConsumer(cluster.url);
  cleanups.push(() => consumer.child.stop());
  const keys = (await serviceKeys()) ?? [];
  expect(keys).toEqual([`/shuttle/services/test.Echo/1.0.0/_/127.0.0.1%3A${worker.port}`]);
  return { finish: () => consumer.finish(), keys };
}

describe('etcd registry on a 3-member cluster', () => {
  it('the leader SIGKILLed under steady load: no failed call, registrations intact under the new leader', { timeout: 90_000 }, async () => {
    const fleet = await steadyFleet();
    const leader = await cluster.leader();
    expect(leader).toBeDefined();
    await cluster.kill(leader!);
    let newLeader: number | undefined;
    await waitUntil(async () => (newLeader = await cluster.leader()) !== undefined, 'the cluster to elect a new leader', 10_000, 100);
    expect(newLeader).not.toBe(leader);
    // Several TTLs under the new leader: the lease is kept alive, the record stays.
    await new Promise((resolve) => setTimeout(resolve, (2 * TTL + 1) * 1000));
    expect(await serviceKeys()).toEqual(fleet.keys);
    await cluster.start(leader!);
    await cluster.healthy();
    expect(await serviceKeys()).toEqual(fleet.keys);
    const report = await fleet.finish();
    expect(report.failures, report.errors.join('; ')).toBe(0);
    expect(report.calls).toBeGreaterThan(100);
  });

  it('quorum lost for 20 s: no failed call, and the provider is registered within 2 s of quorum returning', { timeout: 120_000 }, async () => {
    const fleet = await steadyFleet();
    const stopped = [0, 1];
    for (const member of stopped) await cluster.kill(member);
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    for (const member of stopped) await cluster.start(member, false);
    await cluster.healthy(30_000);
    const quorumBack = Date.now();
    let keys: string[] | undefined;
    await waitUntil(async () => (keys = await serviceKeys())?.length === 1, 'the provider registered again after the quorum returned', 5000, 50);
    const registeredAfterMs = Date.now() - quorumBack;
    expect(keys).toEqual(fleet.keys);
    expect(registeredAfterMs).toBeLessThanOrEqual(2000);
    // And it stays registered (its lease is alive again): several TTLs later the key is there.
    await new Promise((resolve) => setTimeout(resolve, (2 * TTL + 1) * 1000));
    expect(await serviceKeys()).toEqual(fleet.keys);
    const report = await fleet.finish();
    expect(report.failures, report.errors.join('; ')).toBe(0);
    expect(report.calls).toBeGreaterThan(500);
  });
});
