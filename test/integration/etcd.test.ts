import { describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcError, type ServiceInstance } from 'shuttle-rpc';
import { startFaultProxy } from 'shuttle-rpc/testing';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import type { EchoApi } from '../fixtures/services.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { startFixture, type Child } from '../helpers/process.js';
import { openSockets } from '../helpers/sockets.js';
import { watchView } from '../helpers/view.js';
import { rejection, waitUntil } from '../helpers/wait.js';
import { providerRecord } from '../helpers/fake-transport.js';

/*
 * The etcd registry against a real etcd 3.4 server started by the suite on free loopback
 * ports, with providers in their own processes. TTL is 2 s (the smallest allowed) to keep the
 * outage scenarios short; the bounds asserted are the issue's: TTL + 2 s, TTL + 5 s, 5 s.
 */
const TTL = 2;
const suite = etcdSuite();
const { cleanups } = suite;

const registryUrl = (): string => `${suite.etcd.url}`;
function consumerRegistry(url = registryUrl(), options: Record<string, unknown> = {}): EtcdRegistry {
  const registry = createEtcdRegistry({ url, ttlSeconds: TTL, requestTimeoutMs: 1000, ...options }) as EtcdRegistry;
  cleanups.push(() => registry.close());
  return registry;
}
async function provider(env: Record<string, string> = {}): Promise<Child> {
  const child = await startFixture('provider', { SHUTTLE_REGISTRY: registryUrl(), ...env });
  cleanups.push(() => child.stop());
  return child;
}

describe('etcd registry', () => {
  it('announces a provider process with its record, lease and live load; consumers find and call it', async () => {
    const worker = await provider({ PROVIDER_ZONE: 'eu-1' });
    const view = await watchView(consumerRegistry(), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((list) => list.length === 1, 'the provider to appear');
    const record = view.instances[0]!;
    expect(record).toMatchObject({ service: 'test.Echo', version: '1.0.0', group: '', port: worker.port, protocol: 'tcp', weight: 100 });
    expect(record.metadata).toEqual({ fixture: true, zone: 'eu-1' });
    expect(record.methods.map((method) => method.name)).toContain('echo');
    expect(record.serializers).toEqual(['msgpack', 'json', 'protobuf']);

    const keys = await suite.admin.getAll().prefix('/shuttle/').keys();
    expect(keys.sort()).toEqual([`/shuttle/load/127.0.0.1%3A${worker.port}`, `/shuttle/services/test.Echo/1.0.0/_/127.0.0.1%3A${worker.port}`]);
    const leases = await suite.admin.leaseClient.leaseLeases({});
    expect(leases.leases).toHaveLength(1);
    const ttl = await suite.admin.leaseClient.leaseTimeToLive({ ID: leases.leases[0]!.ID, keys: true });
    expect(Number(ttl.grantedTTL)).toBe(10);
    expect(ttl.keys.map(String).sort()).toEqual(keys.sort());

    await view.until((list) => list[0]?.load !== undefined, 'a load snapshot');
    const load = view.instances[0]!.load!;
    expect(load).toMatchObject({ running: 0, draining: false });
    expect(Math.abs(load.timestamp - Date.now())).toBeLessThan(5000);
    expect(load.receivedAt).toBeGreaterThanOrEqual(load.timestamp - 1000);

    const client = await createClient({ registry: registryUrl(), config: false });
    cleanups.push(() => client.close());
    expect(await client.proxy<EchoApi>('test.Echo').pid()).toBe(worker.process.pid);
  });

  it('drops a SIGKILLed provider from the view within TTL + 2 s', async () => {
    const worker = await provider({ PROVIDER_TTL: String(TTL) });
    const view = await watchView(consumerRegistry(), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((list) => list.length === 1, 'the provider to appear');
    const killedAt = Date.now();
    worker.process.kill('SIGKILL');
    await view.until((list) => list.length === 0, 'the killed provider to disappear', (TTL + 2) * 1000);
    expect(Date.now() - killedAt).toBeLessThanOrEqual((TTL + 2) * 1000);
  });

  it('a graceful stop marks the provider draining, then removes its keys and revokes its lease', async () => {
    const worker = await provider();
    const view = await watchView(consumerRegistry(), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((list) => list.length === 1, 'the provider to appear');
    // etcd's own history says in which order things happened.
    const events: string[] = [];
    const watcher = await suite.admin.watch().prefix('/shuttle/').create();
    cleanups.push(() => watcher.cancel());
    watcher.on('put', (kv) => events.push(`put ${kv.key.toString()} draining=${String(JSON.parse(kv.value.toString()).draining)}`));
    watcher.on('delete', (kv) => events.push(`delete ${kv.key.toString()}`));
    await worker.stop();
    await view.until((list) => list.length === 0, 'the records to go');
    await waitUntil(() => events.some((event) => event.startsWith('delete /shuttle/load/')), 'the lease revoke to delete the load key');
    const address = `127.0.0.1%3A${worker.port}`;
    expect(events).toEqual([
      `put /shuttle/load/${address} draining=true`,
      `delete /shuttle/services/test.Echo/1.0.0/_/${address}`,
      `delete /shuttle/load/${address}`,
    ]);
    expect(await suite.admin.getAll().prefix('/shuttle/').keys()).toEqual([]);
    expect((await suite.admin.leaseClient.leaseLeases({})).leases).toHaveLength(0);
  });

  it('keeps serving through an etcd outage of 2 x TTL, and providers re-register after it', async () => {
    await provider({ PROVIDER_TTL: String(TTL) });
    const client = await createClient({ registry: { type: 'etcd', options: { url: registryUrl(), ttlSeconds: TTL, requestTimeoutMs: 1000 } }, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    expect(await echo.echo(0)).toBe(0);

    let calls = 0;
    const failures: string[] = [];
    let calling = true;
    const loop = (async () => {
      while (calling) {
        await echo.echo(calls).then(
          () => calls++,
          (error: Error) => failures.push(error.message),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await suite.etcd.stop();
    await new Promise((resolve) => setTimeout(resolve, 2 * TTL * 1000));
    await suite.etcd.start();
    // Re-registered: the record is in etcd again, on a live lease, within TTL + 5 s.
    await waitUntil(
      async () =>
        (
          await suite.admin
            .getAll()
            .prefix('/shuttle/services/')
            .keys()
            .catch(() => [])
        ).length === 1,
      'the provider to re-register in the restarted etcd',
      (TTL + 5) * 1000,
      100,
    );
    // And it stays: kept alive well past another TTL.
    await new Promise((resolve) => setTimeout(resolve, (TTL + 1) * 1000));
    expect(await suite.admin.getAll().prefix('/shuttle/services/').keys()).toHaveLength(1);
    calling = false;
    await loop;
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(50);
  });

  it('keeps one connection to etcd through restarts, and none once closed', async () => {
    // The etcd3 client replaces its gRPC clients on every failed call; without the registry's
    // shared channel (channel-pool.ts) each outage left a dozen orphaned connections to etcd
    // open after it came back, still open after close.
    await suite.admin.get('/warm-up'); // the test's own client, connected before the count
    const baseline = openSockets(suite.etcd.port);
    const registry = consumerRegistry();
    const record: ServiceInstance = {
      service: 'test.Sockets',
      version: '1.0.0',
      group: '',
      host: '127.0.0.1',
      port: 1,
      protocol: 'tcp',
      serializers: ['msgpack'],
      methods: [{ name: 'echo', stream: false, idempotent: true }],
      weight: 100,
      startTime: 0,
      metadata: {},
    };
    await registry.register(record);
    let seen = 0;
    await registry.subscribe({ service: 'test.Sockets' }, (instances) => (seen = instances.length));
    await waitUntil(() => seen === 1, 'the registry sees its own record');
    expect(openSockets(suite.etcd.port) - baseline).toBe(1);

    for (let outage = 0; outage < 2; outage++) {
      await suite.etcd.stop();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await suite.etcd.start();
      // Working again: the record is back in etcd (re-registered on a new lease if it lapsed).
      let keys: string[] = [];
      await waitUntil(
        async () =>
          (keys = await suite.admin
            .getAll()
            .prefix('/shuttle/services/test.Sockets/')
            .keys()
            .catch(() => [])).length > 0,
        `the record back in etcd after outage ${outage + 1}`,
        (TTL + 5) * 1000,
        100,
      );
      expect(keys).toHaveLength(1);
    }
    // Leave time for any reconnect timer left behind by the outage to fire.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(openSockets(suite.etcd.port) - baseline).toBe(1);
    await registry.close();
    await waitUntil(() => openSockets(suite.etcd.port) === baseline, 'every connection the registry opened to etcd closed', 2000);
    // Nothing it leased outlives it by more than a TTL (a lease granted while etcd was going
    // down, whose answer was lost, is left to expire).
    let leases: unknown[] = [];
    await waitUntil(
      async () => (leases = (await suite.admin.leaseClient.leaseLeases({})).leases).length === 0,
      () => `every lease the registry granted to expire (left: ${JSON.stringify(leases)})`,
      (TTL + 1) * 1000,
      100,
    );
  });

  it('re-registers by itself when its lease is revoked from outside', async () => {
    await provider({ PROVIDER_TTL: String(TTL) });
    const leases = await suite.admin.leaseClient.leaseLeases({});
    expect(leases.leases).toHaveLength(1);
    await suite.admin.leaseClient.leaseRevoke({ ID: leases.leases[0]!.ID });
    expect(await suite.admin.getAll().prefix('/shuttle/services/').keys()).toEqual([]);
    let keys: string[] = [];
    await waitUntil(
      async () => (keys = await suite.admin.getAll().prefix('/shuttle/services/').keys()).length > 0,
      'the provider to register again',
      (TTL + 5) * 1000,
      100,
    );
    expect(keys).toHaveLength(1);
    const renewed = await suite.admin.leaseClient.leaseLeases({});
    expect(renewed.leases.map((lease) => lease.ID)).not.toContain(leases.leases[0]!.ID);
  });

  it('converges within 5 s after a broken watch during which etcd changed and compacted', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: suite.etcd.port });
    cleanups.push(() => proxy.close());
    const worker = await provider();
    const view = await watchView(consumerRegistry(`etcd://127.0.0.1:${proxy.port}`), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((list) => list.length === 1, 'the provider to appear');

    proxy.block();
    // Meanwhile: one provider goes, two appear (written directly), and history is compacted.
    const fake = (port: number) => JSON.stringify(providerRecord(port, { host: '127.0.0.9', methods: [] }));
    await worker.stop();
    await suite.admin.put('/shuttle/services/test.Echo/1.0.0/_/127.0.0.9%3A1001').value(fake(1001));
    await suite.admin.put('/shuttle/services/test.Echo/1.0.0/_/127.0.0.9%3A1002').value(fake(1002));
    const { header } = await suite.admin.getAll().prefix('/shuttle/').exec();
    await suite.admin.kv.compact({ revision: header.revision, physical: true });
    expect(view.addresses()).toEqual([`127.0.0.1:${worker.port}`]);

    proxy.unblock();
    const unblockedAt = Date.now();
    await view.until((list) => list.length === 2 && list.every((instance) => instance.host === '127.0.0.9'), 'the view to converge', 5000);
    expect(view.addresses()).toEqual(['127.0.0.9:1001', '127.0.0.9:1002']);
    expect(Date.now() - unblockedAt).toBeLessThanOrEqual(5000);
  });

  it('a consumer started while etcd is down fails UNAVAILABLE naming the registry, then works', async () => {
    const worker = await provider();
    await suite.etcd.stop();
    const client = await createClient({ registry: { type: 'etcd', options: { url: registryUrl(), requestTimeoutMs: 500 } }, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const error = (await rejection(echo.pid())) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toContain(
      `etcd registry etcd://127.0.0.1:${suite.etcd.port} is unreachable: cannot connect to 127.0.0.1:${suite.etcd.port} (ECONNREFUSED: nothing listens there)`,
    );
    expect(error.message).not.toMatch(/Resolution note|14 UNAVAILABLE|Last error/);
    await suite.etcd.start();
    let pid: number | undefined;
    await waitUntil(async () => (pid = await echo.pid().catch(() => undefined)) !== undefined, 'a call to succeed once etcd is back', 10_000, 200);
    expect(pid).toBe(worker.process.pid);
  });

  it('rejects bad etcd URLs and options naming the key, and never prints a password', () => {
    expect(() => createEtcdRegistry({ url: 'etcd://' })).toThrow(/invalid registry: "etcd:\/\/" \(allowed: etcd:\/\/\[user:password@\]host:port/);
    expect(() => createEtcdRegistry({ url: 'etcd://u:hunter2@' })).toThrow(/invalid registry: "etcd:\/\/\*\*\*@"/);
    expect(() => createEtcdRegistry({ url: 'etcd://u:hunter2@host' })).toThrow(/invalid etcd registry address: "host"/);
    for (const url of ['etcd://u:hunter2@', 'etcd://u:hunter2@host']) expect(() => createEtcdRegistry({ url })).not.toThrow(/hunter2/);
    expect(() => createEtcdRegistry({ url: 'etcd://h:1', ttlSeconds: 0 })).toThrow(
      /invalid etcd registry ttlSeconds: 0 \(allowed: an integer from 2 to 3600\)/,
    );
    expect(() => createEtcdRegistry({ url: 'etcd://h:1', prefix: 'shuttle' })).toThrow(/invalid etcd registry prefix/);
    expect(() => createEtcdRegistry({ url: 'etcd://h:1', tls: { ca: '/no/such/ca.pem' } })).toThrow(
      /invalid etcd registry tls\.ca: "\/no\/such\/ca\.pem" \(allowed: a readable file/,
    );
  });
});
