import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ServiceInstance } from 'shuttle-rpc';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The etcd registry under the volumes a large fleet, a runaway deploy or anyone who can write
 * under the prefix can put there: records rewritten without pause, more records than a
 * consumer holds, more keys than one answer carries. Real etcd started by the suite.
 */
const suite = etcdSuite();
const { cleanups } = suite;

function registry(): EtcdRegistry {
  const created = createEtcdRegistry({ url: suite.etcd.url, ttlSeconds: 2, requestTimeoutMs: 3000 }) as EtcdRegistry;
  cleanups.push(() => created.close());
  return created;
}
const recordKey = (port: number, service = 'test.Echo'): string => `/shuttle/services/${service}/1.0.0/_/10.0.0.1%3A${port}`;
function swallowWarnings(): string[] {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning.message);
  process.on('warning', onWarning);
  cleanups.push(() => process.off('warning', onWarning));
  return warnings;
}

describe('etcd registry: record changes cost a bounded number of rebuilds', () => {
  it('a record rewritten 400 times as fast as etcd takes it hands subscribers a few lists, the last one current', async () => {
    for (let port = 1; port <= 50; port++)
      await suite.admin
        .put(recordKey(port))
        .value(JSON.stringify(providerRecord(port)))
        .exec();
    const consumer = registry();
    const lists: Array<readonly ServiceInstance[]> = [];
    const subscription = await consumer.subscribe({ service: 'test.Echo' }, (instances) => void lists.push(instances));
    cleanups.push(() => subscription.close());
    expect(lists.at(-1)?.length).toBe(50);
    const before = lists.length;

    const startedAt = Date.now();
    for (let weight = 1; weight <= 400; weight++) {
      await suite.admin
        .put(recordKey(1))
        .value(JSON.stringify(providerRecord(1, { weight })))
        .exec();
    }
    const elapsedMs = Date.now() - startedAt;
    await waitUntil(() => lists.at(-1)?.find((instance) => instance.port === 1)?.weight === 400, 'the last weight to reach the consumer', 2000, 5);
    // One rebuild per 50 ms at most (plus the first, at once), however many writes came in.
    expect(lists.length - before).toBeLessThanOrEqual(Math.ceil(elapsedMs / 50) + 2);
    expect(lists.length - before).toBeLessThan(400 / 4);
  });

  it('a provider joining after a quiet spell is passed on at once', async () => {
    const consumer = registry();
    const lists: Array<readonly ServiceInstance[]> = [];
    const subscription = await consumer.subscribe({ service: 'test.Echo' }, (instances) => void lists.push(instances));
    cleanups.push(() => subscription.close());
    await new Promise((resolve) => setTimeout(resolve, 100));
    const joinedAt = Date.now();
    await suite.admin
      .put(recordKey(7))
      .value(JSON.stringify(providerRecord(7)))
      .exec();
    await waitUntil(() => lists.at(-1)?.length === 1, 'the join to reach the consumer', 2000, 2);
    expect(Date.now() - joinedAt).toBeLessThan(40);
  });
});

describe("etcd registry: a consumer's copy of a prefix has a budget", () => {
  const manyKey = (n: number): string => `/shuttle/services/test.Many/1.0.0/_/10.1.${n >> 8}.${n & 255}%3A1`;
  const manyRecord = (n: number): string => JSON.stringify(providerRecord(1, { service: 'test.Many', host: `10.1.${n >> 8}.${n & 255}` }));
  async function putMany(from: number, to: number): Promise<void> {
    for (let start = from; start < to; start += 500) {
      const end = Math.min(to, start + 500);
      await Promise.all(
        Array.from({ length: end - start }, (_, i) =>
          suite.admin
            .put(manyKey(start + i))
            .value(manyRecord(start + i))
            .exec(),
        ),
      );
    }
  }

  it('holds 10,000 records of a service, says so once naming the prefix and the limit, and reads the rest once deletes make room', async () => {
    const warnings = swallowWarnings();
    await putMany(0, 10_050);
    const consumer = registry();
    const lists: Array<readonly ServiceInstance[]> = [];
    const subscription = await consumer.subscribe({ service: 'test.Many' }, (instances) => void lists.push(instances));
    cleanups.push(() => subscription.close());
    expect(lists.at(-1)?.length).toBe(10_000);
    // A new key while full is not read either.
    await suite.admin.put(manyKey(20_000)).value(manyRecord(20_000)).exec();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lists.at(-1)?.length).toBe(10_000);
    const full = warnings.filter((warning) => warning.includes('/shuttle/services/test.Many/') && warning.includes('10000 keys'));
    expect(full).toHaveLength(1);

    // 1,100 leave: below nine tenths of the budget, the consumer lists again and has them all.
    await Promise.all(Array.from({ length: 1100 }, (_, n) => suite.admin.delete().key(manyKey(n)).exec()));
    await waitUntil(() => lists.at(-1)?.length === 10_050 - 1100 + 1, 'the consumer to read the records left out', 3000, 20);
  });
});

describe('etcd registry: listing the services reads keys in pages', () => {
  it('lists every service when all the keys together pass the 4 MiB answer limit, and skips past a folder of many records', async () => {
    await suite.admin
      .put(recordKey(1))
      .value(JSON.stringify(providerRecord(1)))
      .exec();
    // Five keys of 1.2 MiB each: one answer holding them all would be refused by the client.
    for (let n = 0; n < 5; n++)
      await suite.admin
        .put(`/shuttle/services/big${n}/${'x'.repeat(1_200_000)}`)
        .value('{}')
        .exec();
    await Promise.all(
      Array.from({ length: 1500 }, (_, n) =>
        suite.admin
          .put(recordKey(n + 2, 'test.Busy'))
          .value('{}')
          .exec(),
      ),
    );
    const consumer = registry();
    expect(await consumer.services()).toEqual(['big0', 'big1', 'big2', 'big3', 'big4', 'test.Busy', 'test.Echo']);
  });
});

describe("etcd registry: a service's watch ends with its last subscription", () => {
  /** Watches etcd holds open now, from its metrics. */
  async function watchers(): Promise<number> {
    const text = await (await fetch(`${suite.etcd.endpoint}/metrics`)).text();
    return Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
  }

  it('30 services subscribed to and left leave no watch behind; one still subscribed keeps its own', async () => {
    const consumer = registry();
    const kept = await consumer.subscribe({ service: 'test.Kept' }, () => {});
    cleanups.push(() => kept.close());
    const before = await watchers();
    for (let n = 0; n < 30; n++) {
      const first = await consumer.subscribe({ service: `test.Passing${n}` }, () => {});
      const second = await consumer.subscribe({ service: `test.Passing${n}` }, () => {});
      first.close();
      first.close();
      second.close();
    }
    await waitUntil(async () => (await watchers()) <= before, 'the watches of the services left to end', 3000, 50);
    expect(await watchers()).toBe(before);
    // The one still subscribed sees a join.
    const lists: Array<readonly ServiceInstance[]> = [];
    const again = await consumer.subscribe({ service: 'test.Kept' }, (instances) => void lists.push(instances));
    cleanups.push(() => again.close());
    await suite.admin
      .put(recordKey(9, 'test.Kept'))
      .value(JSON.stringify(providerRecord(9, { service: 'test.Kept' })))
      .exec();
    await waitUntil(() => lists.at(-1)?.length === 1, 'the subscription kept to see a join', 2000, 5);
  });
});

describe('shuttle ls on etcd with many services', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const bin = root + (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { bin: { shuttle: string } }).bin.shuttle;

  it('lists 3,000 services of one record each in one read, within seconds', async () => {
    for (let start = 0; start < 3000; start += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, i) =>
          suite.admin
            .put(recordKey(1, `svc${start + i}`))
            .value(JSON.stringify(providerRecord(1, { service: `svc${start + i}` })))
            .exec(),
        ),
      );
    }
    const startedAt = Date.now();
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [bin, 'ls', '--json', '--registry', suite.etcd.url],
        { timeout: 20_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr }),
      );
    });
    const elapsedMs = Date.now() - startedAt;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const listed = (JSON.parse(run.stdout) as { services: Array<{ service: string; providers: unknown[] }> }).services;
    expect(listed).toHaveLength(3000);
    expect(listed.every((entry) => entry.providers.length === 1)).toBe(true);
    // Service by service (a listing and a watch each) took about 12 ms a service here.
    expect(elapsedMs).toBeLessThan(8000);
  });
});
