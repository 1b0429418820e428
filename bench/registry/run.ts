import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { createEtcdRegistry, type EtcdRegistry } from '../../src/registry/etcd/etcd.js';
import type { ServiceInstance } from '../../src/registry/instance.js';
import { startEtcd, type EtcdServer } from '../../test/helpers/etcd.js';
import { numberOption } from '../common/common.js';
import { reportLoads, SERVICE, startProvider, type SimulatedProvider } from './fleet.js';

/*
 * bench:registry — discovery at fleet scale on a real etcd (started here on a free loopback
 * port): N simulated providers (fleet.ts: each its own lease, record key and load key, TTL
 * 10 s) reporting load every 500 ms, and M consumers (each an EtcdRegistry of its own, as M
 * consumer processes would have) watching the service, for N in {100, 1000} and M in {1, 20}.
 * Measured: the time for a new consumer to see all N; the time for all M consumers to see a
 * join and a SIGKILLed provider's leave (a provider process of its own, lease TTL 2 s); etcd writes/s and
 * etcd CPU over a window of load reports; this process's CPU; consumer heap per provider.
 * Options: --window S (5 s of load reports per case), --interval MS (500), --providers N (only
 * this N). Bounded: about a
 * minute in all. npm run bench:registry runs it under nice with --expose-gc.
 */
const windowMs = numberOption('window', 5) * 1000;
const intervalMs = numberOption('interval', 500);
const only = process.argv.includes('--providers') ? numberOption('providers', 100) : undefined;
const PREFIX = '/shuttle';
const gc = (globalThis as { gc?: () => void }).gc;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
async function until(check: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) return NaN;
    await sleep(2);
  }
  return performance.now() - start;
}
/** CPU seconds used so far by process `pid` (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
/** The pid of the etcd serving `etcd.port` (found by its command line). */
function etcdPid(etcd: EtcdServer): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const command = (() => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (command.includes('etcd') && command.includes(`127.0.0.1:${etcd.port}`)) return Number(entry);
  }
  throw new Error(`cannot find the etcd process on port ${etcd.port}`);
}
const heap = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};

interface Row {
  n: number;
  m: number;
  seeAllMs: number;
  joinMs: number;
  leaveMs: number;
  offered: number;
  writesPerSecond: number;
  etcdCpu: number;
  benchCpu: number;
  failed: number;
  firstError: string | undefined;
  bytesPerProvider: number;
}

async function runCase(etcd: EtcdServer, admin: Etcd3, providers: SimulatedProvider[], n: number, m: number): Promise<Row> {
  // Consumers: the first alone (memory per provider is measured on it), then the rest at once.
  const before = heap();
  const consumers: Array<{ registry: EtcdRegistry; list: readonly ServiceInstance[]; subscribed: boolean }> = [];
  const subscribe = async (): Promise<number> => {
    const entry = { registry: createEtcdRegistry({ url: etcd.url }) as EtcdRegistry, list: [] as readonly ServiceInstance[], subscribed: false };
    consumers.push(entry);
    const start = performance.now();
    try {
      await entry.registry.subscribe({ service: SERVICE }, (list) => (entry.list = list));
      entry.subscribed = true;
    } catch {
      return NaN; // etcd did not answer within the registry's request timeout (3 s)
    }
    const seen = await until(() => entry.list.length >= n && entry.list.every((instance) => instance.load !== undefined), 30_000);
    return Number.isNaN(seen) ? NaN : performance.now() - start;
  };
  const seeAll = [await subscribe()];
  const bytesPerProvider = (heap() - before) / n;
  seeAll.push(...(await Promise.all(Array.from({ length: m - 1 }, subscribe))));

  // Load reports from every provider, and etcd's revision counting the writes.
  const reports = reportLoads(PREFIX, providers, intervalMs);
  await sleep(1000);
  const pid = etcdPid(etcd);
  const [revision0, etcdCpu0, benchCpu0, t0] = [Number((await admin.get('x').exec()).header.revision), cpuSeconds(pid), process.cpuUsage(), performance.now()];
  await sleep(windowMs);
  const seconds = (performance.now() - t0) / 1000;
  const revision1 = Number((await admin.get('x').exec()).header.revision);
  const etcdCpu = (cpuSeconds(pid) - etcdCpu0) / seconds;
  const benchCpuUsage = process.cpuUsage(benchCpu0);
  const benchCpu = (benchCpuUsage.user + benchCpuUsage.system) / 1e6 / seconds;

  // A join by a provider process, then that process SIGKILLed: its lease (TTL 2 s) expires.
  const joiner = spawn(process.execPath, [fileURLToPath(new URL('./provider-process.js', import.meta.url)), etcd.endpoint, String(n + 1)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => joiner.stdout.once('data', () => resolve()));
  // From the moment its keys are written (it says ready right after) to every consumer seeing them.
  // Only consumers that could subscribe count; with none, there is nothing to measure (NaN).
  const none = consumers.every((consumer) => !consumer.subscribed);
  const joinMs = none ? NaN : await until(() => consumers.every((consumer) => !consumer.subscribed || consumer.list.length === n + 1), 10_000);
  joiner.kill('SIGKILL');
  const leaveMs = none ? NaN : await until(() => consumers.every((consumer) => !consumer.subscribed || consumer.list.length === n), 30_000);
  reports.stop();
  await Promise.all(consumers.map((consumer) => consumer.registry.close()));
  return {
    n,
    m,
    seeAllMs: seeAll.some(Number.isNaN) ? NaN : Math.max(...seeAll),
    joinMs,
    leaveMs,
    offered: (n * 1000) / intervalMs,
    writesPerSecond: (revision1 - revision0) / seconds,
    etcdCpu,
    benchCpu,
    failed: reports.failed,
    firstError: reports.firstError,
    bytesPerProvider,
  };
}

const rows: Row[] = [];
const started = performance.now();
for (const n of only === undefined ? [100, 1000] : [only]) {
  const etcd = await startEtcd();
  const admin = new Etcd3({ hosts: etcd.endpoint });
  const providerClient = new Etcd3({ hosts: etcd.endpoint });
  const providers: SimulatedProvider[] = [];
  for (let index = 0; index < n; index += 50) {
    providers.push(...(await Promise.all(Array.from({ length: Math.min(50, n - index) }, (_, k) => startProvider(providerClient, PREFIX, index + k, 10)))));
  }
  console.error(`N=${n}: ${n} providers registered at ${((performance.now() - started) / 1000).toFixed(0)} s`);
  for (const m of [1, 20]) {
    rows.push(await runCase(etcd, admin, providers, n, m));
    console.error(`N=${n} M=${m} done at ${((performance.now() - started) / 1000).toFixed(0)} s: ${JSON.stringify(rows.at(-1))}`);
  }
  await Promise.all(providers.map((provider) => provider.session.close()));
  providerClient.close();
  admin.close();
  await etcd.remove();
}

const fixed = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toFixed(digits) : 'timeout / none');
console.log(`bench:registry, Node ${process.version}, load reports every ${intervalMs} ms, ${windowMs / 1000} s windows\n`);
console.log(
  '| N | M | new consumer sees all N (ms, slowest of M) | join seen by all M (ms after the write) | SIGKILLed leave seen by all M (ms, TTL 2 s) | load writes/s offered | etcd writes/s | etcd CPU (cores) | bench process CPU (cores) | failed writes | consumer heap per provider (bytes, the first consumer) |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) {
  console.log(
    `| ${row.n} | ${row.m} | ${fixed(row.seeAllMs)} | ${fixed(row.joinMs)} | ${fixed(row.leaveMs)} | ${row.offered} | ${fixed(row.writesPerSecond)} | ${fixed(row.etcdCpu, 2)} | ${fixed(row.benchCpu, 2)} | ${row.failed} | ${row.m === 1 ? fixed(row.bytesPerProvider) : '—'} |`,
  );
}
process.exit(0);
