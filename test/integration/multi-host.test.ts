import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { createTestHosts, netnsUnavailable, type TestHosts } from '../helpers/netns.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * Several hosts on one machine: two providers and a consumer, each in its own network
 * namespace with its own address, registered in one etcd listening on the namespaces' bridge.
 * Providers bind 0.0.0.0 and advertise their namespace's address by default; the consumer
 * must reach both through the addresses it read from etcd.
 */
const why = netnsUnavailable();
if (why !== undefined) {
  const message = `MULTI-HOST TEST NOT RUN: cannot create network namespaces here (${why}).`;
  if (process.env['CI']) throw new Error(`${message} CI must run it: run the suite as root with iproute2 installed.`);
  console.error(`\n${'!'.repeat(message.length)}\n${message}\n${'!'.repeat(message.length)}\n`);
}

describe.skipIf(why !== undefined && !process.env['CI'])('multi-host (network namespaces)', () => {
  let hosts: TestHosts;
  let etcd: EtcdServer;
  const children: Child[] = [];

  beforeAll(async () => {
    hosts = createTestHosts(['a', 'b', 'c']);
    etcd = await startEtcd({ extraListen: [hosts.gateway] });
  });
  afterAll(async () => {
    await Promise.all(children.map((child) => child.stop()));
    await etcd?.remove();
    hosts?.remove();
  });

  it('a consumer reaches every provider by the address it advertised', async () => {
    const [nsA, nsB, nsC] = [...hosts.hosts.keys()] as [string, string, string];
    const registry = `etcd://${hosts.gateway}:${etcd.port}`;
    for (const ns of [nsA, nsB]) {
      children.push(await startFixture('provider', { SHUTTLE_REGISTRY: registry, SHUTTLE_HOST: '0.0.0.0' }, 15_000, hosts.exec(ns)));
    }
    const admin = new Etcd3({ hosts: etcd.endpoint });
    const records = Object.values(await admin.getAll().prefix('/shuttle/services/').strings()).map((raw) => JSON.parse(raw) as { host: string });
    admin.close();
    expect(records.map((record) => record.host).sort()).toEqual([hosts.hosts.get(nsA), hosts.hosts.get(nsB)].sort());

    const consumer = fileURLToPath(new URL('../../build/test/fixtures/consumer.js', import.meta.url));
    const { stdout } = await promisify(execFile)('ip', ['netns', 'exec', nsC, process.execPath, consumer], {
      env: { ...process.env, SHUTTLE_REGISTRY: registry, CONSUMER_EXPECT: '2', CONSUMER_CALLS: '200' },
      timeout: 30_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { pids: number[]; failures: number; errors: string[] };
    expect(result.errors).toEqual([]);
    expect(result.pids.sort()).toEqual(children.map((child) => child.process.pid!).sort());
  });
});
