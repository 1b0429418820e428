import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ServiceInstance } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import { startSteadyConsumer } from '../helpers/consumer-process.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { startFixture, type Child } from '../helpers/process.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * An operator's failing etcd, on a real 3-member cluster on loopback: a member hung (SIGSTOP,
 * its sockets open and silent), the cluster wiped and rebuilt empty on the same ports. Provider
 * processes register with a 2 s lease; consumers are a steady consumer process (a call every
 * 20 ms) and in-test registries whose every notification is recorded.
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
  for (const member of [0, 1, 2]) cluster.resume(member);
  await admin
    .delete()
    .prefix('/shuttle/')
    .catch(() => undefined);
});
afterAll(async () => {
  admin?.close();
  await cluster?.remove();
});

async function provider(): Promise<Child> {
  const child = await startFixture('provider', { SHUTTLE_REGISTRY: cluster.url, PROVIDER_TTL: String(TTL) });
  cleanups.push(() => child.stop());
  return child;
}

function registry(options: Record<string, unknown> = {}): EtcdRegistry {
  const made = createEtcdRegistry({ url: cluster.url, ttlSeconds: TTL, requestTimeoutMs: 1000, ...options }) as EtcdRegistry;
  cleanups.push(() => made.close());
  return made;
}

/** A consumer registry's view of test.Echo, with the fewest providers it ever listed since `mark()`. */
async function recordedView(): Promise<{ ports(): number[]; fewestSinceMark(): number; mark(): void }> {
  let instances: readonly ServiceInstance[] = [];
  let fewest = Infinity;
  const subscription = await registry().subscribe({ service: 'test.Echo' }, (list) => {
    instances = list;
    fewest = Math.min(fewest, list.length);
  });
  cleanups.push(() => subscription.close());
  return {
    ports: () => instances.map((instance) => instance.port).sort((a, b) => a - b),
    fewestSinceMark: () => fewest,
    mark: () => {
      fewest = instances.length;
    },
  };
}

describe('etcd registry under a failing 3-member cluster', () => {
  it('a cluster wiped and rebuilt empty on the same ports (revision back to 1): consumers keep their providers, then see joins and leaves in the new cluster', {
    timeout: 90_000,
  }, async () => {
    // A cluster with history: the revision is far past what the new cluster will reach.
    for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 25 }, (_, key) => admin.put(`/history/${key}`).value(String(round))));
    const first = await provider();
    let firstStderr = '';
    first.process.stderr!.on('data', (chunk: Buffer) => (firstStderr += chunk.toString()));
    const second = await provider();
    const consumer = await startSteadyConsumer(cluster.url);
    cleanups.push(() => consumer.child.stop());
    const view = await recordedView();
    await waitUntil(() => view.ports().length === 2, 'the consumer to list both providers', 5000, 20);
    view.mark();
    // A provider that will not come back after the wipe (a record written by hand, of another service).
    const goneKey = '/shuttle/services/test.Gone/1.0.0/_/127.0.0.9%3A1001';
    await admin.put(goneKey).value(JSON.stringify(providerRecord(1001, { service: 'test.Gone', host: '127.0.0.9', methods: [] })));
    let gone: readonly ServiceInstance[] = [];
    const goneView = await registry().subscribe({ service: 'test.Gone' }, (list) => (gone = list));
    cleanups.push(() => goneView.close());
    expect(gone).toHaveLength(1);

    await cluster.wipe();
    const back = Date.now();
    // The providers write their keys into the new cluster; the consumer never lists nobody.
    await waitUntil(
      async () => (await admin.getAll().prefix('/shuttle/services/test.Echo/').keys()).length === 2,
      'both providers registered again',
      10_000,
      50,
    );
    const reRegisteredMs = Date.now() - back;

    // A provider joins the new cluster and one leaves it: the consumer sees both.
    const third = await provider();
    const joinedAt = Date.now();
    await waitUntil(
      () => view.ports().includes(third.port),
      () => `the consumer to see the provider that joined (lists ${view.ports()})`,
      5000,
      20,
    );
    const joinSeenMs = Date.now() - joinedAt;
    await first.stop();
    const leftAt = Date.now();
    await waitUntil(
      () => !view.ports().includes(first.port),
      () => `the consumer to see the provider that left (lists ${view.ports()})`,
      5000,
      20,
    );
    const leaveSeenMs = Date.now() - leftAt;
    expect(view.ports()).toEqual([second.port, third.port].sort((a, b) => a - b));
    expect(view.fewestSinceMark()).toBe(2);
    expect(reRegisteredMs).toBeLessThan(5000);
    // Once each, in the provider's warnings: its lease was lost; it is registered again.
    await waitUntil(() => /registered again on a new lease/.test(firstStderr), 'the provider to report its new lease', 5000, 20);
    expect(firstStderr.match(/SHUTTLE_REGISTRY_LEASE/g)).toHaveLength(2);
    expect(firstStderr, firstStderr).toMatch(
      /this provider's lease was lost \((etcd no longer knows it|etcd was out of reach for longer than twice its 2 s TTL)[^)]*\); its 2 keys are gone from etcd/,
    );
    // The record nobody wrote again is kept for the grace period (10 s), then dropped.
    expect(gone).toHaveLength(1);
    await waitUntil(() => gone.length === 0, 'the record nobody wrote again to be dropped', 12_000 - (Date.now() - back), 50);

    const report = await consumer.finish();
    expect(report.failures, report.errors.join('; ')).toBe(0);
    console.log(`wipe: re-registered in ${reRegisteredMs} ms; a join seen in ${joinSeenMs} ms, a leave in ${leaveSeenMs} ms`);
  });

  it('a member hung (SIGSTOP) for 10 s: no provider loses its lease, no call fails', { timeout: 90_000 }, async () => {
    const leader = await cluster.leader();
    const hung = ((leader ?? 0) + 1) % 3;
    // Ten providers in this process (each its own etcd client and lease) and one in its own:
    // each keep-alive stream goes to a member picked at random, so some go to the one that hangs.
    const providers = Array.from({ length: 10 }, () => registry());
    await Promise.all(providers.map((one, index) => one.register(providerRecord(20_000 + index, { service: 'test.Hold', host: '127.0.0.9' }))));
    await provider();
    const consumer = await startSteadyConsumer(cluster.url);
    cleanups.push(() => consumer.child.stop());
    // Deletions, as the members that stay up see them.
    const observer = new Etcd3({ hosts: cluster.endpoints.filter((_, member) => member !== hung) });
    cleanups.push(() => observer.close());
    const deleted: string[] = [];
    const watcher = await observer.watch().prefix('/shuttle/services/').create();
    watcher.on('delete', (kv) => deleted.push(kv.key.toString()));
    // Two keep-alives each first, so every keep-alive stream is open.
    await new Promise((resolve) => setTimeout(resolve, (TTL * 1000 * 2) / 3 + 200));

    cluster.pause(hung);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect(deleted, 'provider keys deleted while a member hung: their leases lapsed').toEqual([]);
    cluster.resume(hung);
    await cluster.healthy();
    expect(deleted).toEqual([]);
    expect(await observer.getAll().prefix('/shuttle/services/').keys()).toHaveLength(11);
    const report = await consumer.finish();
    expect(report.failures, report.errors.join('; ')).toBe(0);
  });

  it('every lease revoked from outside at once (etcdctl lease revoke): the fleet re-registers within TTL/3 + 1 s, spread out, not in one burst', {
    timeout: 60_000,
  }, async () => {
    const worker = await provider();
    const view = await recordedView();
    await waitUntil(() => view.ports().length === 1, 'the consumer to list the provider', 5000, 20);
    // Thirty providers in this process, registered together (their keep-alives in step), whose
    // re-registration times are recorded.
    const fleet = Array.from({ length: 30 }, () => registry());
    await Promise.all(fleet.map((one, index) => one.register(providerRecord(20_000 + index, { service: 'test.Hold', host: '127.0.0.9' }))));
    const regrantedAt: number[] = [];
    const regrants = setInterval(() => {
      for (const [index, one] of fleet.entries()) if (one.leaseGenerations > 1) regrantedAt[index] ??= Date.now();
    }, 5);
    cleanups.push(() => clearInterval(regrants));

    const { leases } = await admin.leaseClient.leaseLeases({});
    expect(leases).toHaveLength(31);
    await Promise.all(leases.map((lease) => admin.leaseClient.leaseRevoke({ ID: lease.ID })));
    const revokedAt = Date.now();
    await waitUntil(() => view.ports().includes(worker.port) && regrantedAt.filter(Boolean).length === 30, 'every provider granted a new lease', 5000, 10);
    // A new lease is counted when granted; its key is written just after, so the keys are waited on.
    const keys = async () => (await admin.getAll().prefix('/shuttle/services/').keys()).length;
    await waitUntil(async () => (await keys()) === 31, "every provider's key written again", 5000, 10);
    const recoveredMs = Date.now() - revokedAt;
    const times = [...regrantedAt].sort((a, b) => a - b);
    const busiest = Math.max(...times.map((start) => times.filter((time) => time >= start && time < start + 50).length));
    console.log(`revoke: all registered again in ${recoveredMs} ms; the fleet over ${times.at(-1)! - times[0]!} ms, at most ${busiest} within 50 ms`);
    expect(recoveredMs).toBeLessThanOrEqual((TTL * 1000) / 3 + 1000);
    // Measured in this process, whose event loop also runs the 30 (and other test files share the
    // cores), so bunching is overstated; the draw itself is pinned in test/unit/registry/recovery-delay.test.ts.
    expect(busiest, `re-registrations within 50 ms (of 30, spread over ${times.at(-1)! - times[0]!} ms)`).toBeLessThanOrEqual(22);
    expect(await keys()).toBe(31);
  });

  it('a member hung (SIGSTOP): every consumer still sees providers join and leave within 5 s', { timeout: 90_000 }, async () => {
    const leader = await cluster.leader();
    const hung = ((leader ?? 0) + 1) % 3;
    // Twenty-four consumers in this process (each its own etcd client and watch stream, on a
    // member picked at random: all 24 miss the hung one about once in 17,000 runs), each listing
    // what it sees of test.Hold.
    const seen: number[][] = Array.from({ length: 24 }, () => []);
    const moves: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      if (warning.code === 'SHUTTLE_REGISTRY_WATCH') moves.push(warning.message);
    };
    process.on('warning', onWarning);
    cleanups.push(() => process.off('warning', onWarning));
    for (const [index] of seen.entries()) {
      const subscription = await registry().subscribe({ service: 'test.Hold' }, (list) => (seen[index] = list.map((instance) => instance.port)));
      cleanups.push(() => subscription.close());
    }
    cluster.pause(hung);
    const joining = registry();
    await joining.register(providerRecord(21_000, { service: 'test.Hold', host: '127.0.0.9' }));
    const joinedAt = Date.now();
    await waitUntil(
      () => seen.every((ports) => ports.includes(21_000)),
      () => `every consumer to see the provider that joined (${seen.map((ports) => ports.length)})`,
      5000,
      20,
    );
    const joinSeenMs = Date.now() - joinedAt;
    await joining.close();
    const leftAt = Date.now();
    await waitUntil(
      () => seen.every((ports) => ports.length === 0),
      () => `every consumer to see the provider leave (${seen.map((ports) => ports.length)})`,
      5000,
      20,
    );
    // Each consumer whose stream sat on the hung member says so, naming it; none names another.
    const hungHost = new URL(cluster.endpoints[hung]!).host;
    expect(moves.length).toBeGreaterThan(0);
    expect(moves.length).toBeLessThanOrEqual(seen.length);
    for (const message of moves) expect(message).toContain(`went silent for 1000 ms: its member is hung or cut off (member ${hungHost});`);
    console.log(`hung member: a join seen by all 24 consumers in ${joinSeenMs} ms, a leave in ${Date.now() - leftAt} ms; ${moves.length} watch streams moved`);
  });

  it('a member hung, then a member dead: fresh providers register and fresh consumers list every time, within the request budget', {
    timeout: 90_000,
  }, async () => {
    const leader = await cluster.leader();
    const member = ((leader ?? 0) + 1) % 3;
    const attempts = async (state: string): Promise<void> => {
      // Each a new etcd client: its requests go to members picked at random.
      for (let round = 0; round < 8; round++) {
        const started = Date.now();
        const fresh = registry();
        await fresh.register(providerRecord(22_000 + round, { service: 'test.Hold', host: '127.0.0.9' }));
        let listed: readonly ServiceInstance[] = [];
        const subscription = await registry().subscribe({ service: 'test.Hold' }, (list) => (listed = list));
        subscription.close();
        expect(listed.map((instance) => instance.port)).toContain(22_000 + round);
        // A lease, a write, two listings and a watch, each costing at most one attempt (a third
        // of 1000 ms) or one silent probe period (1000 ms) on the hung member: never a hang.
        expect(Date.now() - started, `register + list with a member ${state}`).toBeLessThan(3500);
      }
    };
    cluster.pause(member);
    await attempts('hung');
    cluster.resume(member);
    await cluster.kill(member);
    await attempts('dead');
    await cluster.start(member);
  });

  it('a provider hung (SIGSTOP) past its lease: consumers route away before its lease lapses, and call it again soon after it resumes', {
    timeout: 60_000,
  }, async () => {
    const hung = await provider();
    const healthy = await provider();
    const client = await createClient({ registry: cluster.url, config: false, timeoutMs: 5000, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 300 });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const calls: Array<{ at: number; pid: number | undefined }> = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        calls.push({ at: Date.now(), pid: await echo.pid().catch(() => undefined) });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    cleanups.push(() => {
      running = false;
      return loop;
    });
    await waitUntil(() => new Set(calls.map((call) => call.pid)).size === 2, 'calls to reach both providers', 5000, 20);

    hung.process.kill('SIGSTOP');
    cleanups.push(() => hung.process.kill('SIGCONT'));
    const stoppedAt = Date.now();
    // Three TTLs: its lease lapses and its record goes too.
    await new Promise((resolve) => setTimeout(resolve, 3 * TTL * 1000));
    hung.process.kill('SIGCONT');
    const resumedAt = Date.now();
    await waitUntil(() => calls.some((call) => call.at > resumedAt && call.pid === hung.process.pid), 'a call to reach the resumed provider', 5000, 20);
    const backAfterMs = calls.find((call) => call.at > resumedAt && call.pid === hung.process.pid)!.at - resumedAt;
    running = false;
    await loop;

    // Only calls sent to it before its lease lapsed can fail: the heartbeat (interval + timeout)
    // fails each connection to it, but it is dialled again (the stopped process's kernel still
    // accepts) until its record goes, within the TTL. Every call after that is answered, by the
    // other provider.
    const during = calls.filter((call) => call.at >= stoppedAt && call.at < resumedAt);
    const failed = during.filter((call) => call.pid === undefined);
    for (const call of failed) expect(call.at - stoppedAt).toBeLessThan(TTL * 1000 + 1000);
    expect(during.filter((call) => call.at - stoppedAt > TTL * 1000 + 1000).every((call) => call.pid === healthy.process.pid)).toBe(true);
    expect(during.length).toBeGreaterThan(50);
    // Back within the time to re-register after its lease lapsed: a keep-alive period (TTL/3) plus a round trip.
    expect(backAfterMs).toBeLessThan(3000);
    console.log(
      `provider hung: ${failed.length} of ${during.length} calls failed (last ${Math.max(0, ...failed.map((call) => call.at - stoppedAt))} ms after the stop); called again ${backAfterMs} ms after it resumed`,
    );
  });

  it('every member hung: a provider told to stop exits within 5 s, and a consumer closes within 2 s', { timeout: 60_000 }, async () => {
    // The default lease (10 s), still held when it stops: it drains, deletes and revokes.
    const worker = await startFixture('provider', { SHUTTLE_REGISTRY: cluster.url });
    cleanups.push(() => worker.stop());
    const client = await createClient({ registry: cluster.url, config: false });
    cleanups.push(() => client.close());
    expect(await client.proxy<EchoApi>('test.Echo').pid()).toBe(worker.process.pid);
    for (const member of [0, 1, 2]) cluster.pause(member);
    // Long enough for the provider's load writes to find etcd silent (3 s each, by default).
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const exited = new Promise((resolve) => worker.process.once('exit', resolve));
    const stoppingAt = Date.now();
    worker.process.kill('SIGTERM');
    await exited;
    const exitMs = Date.now() - stoppingAt;
    const closingAt = Date.now();
    await client.close();
    const closeMs = Date.now() - closingAt;
    console.log(`every member hung: the provider exited ${exitMs} ms after SIGTERM, the consumer closed in ${closeMs} ms`);
    // Its drain, its delete and its revoke, each given a third of the 3 s budget while etcd is silent.
    expect(exitMs).toBeLessThan(5000);
    expect(closeMs).toBeLessThan(2000);
  });
});
