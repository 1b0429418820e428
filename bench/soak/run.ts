import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient, ShuttleMetrics } from 'shuttle-rpc';
import { startEtcd } from '../../test/helpers/etcd.js';
import { numberOption } from '../common/common.js';
import { Children } from './children.js';
import { line, type Sample, sample } from './sample.js';
import type { SoakApi } from './service.js';

/*
 * bench/soak — what grows under churn. Real provider processes (provider.ts) on the file
 * registry (or, with --etcd, a real etcd started here): --stable N providers that live for the
 * whole run, plus --churning M restarted one at a time every --restart-ms (new port each time),
 * every third SIGKILLed and its record left to expire. This process is the consumer: --callers
 * loops of echo calls with random deadlines, sleeps cancelled mid-way, failures of every code
 * and streams abandoned after a few chunks. A child (client-churn.ts) creates and closes
 * clients in a loop. Every process samples itself every --sample-ms (heap after GC, active
 * resources, fds, metrics series); five samples of each (first to last) are printed at the end.
 * --grpc: providers and consumer speak grpc instead of tcp.
 * Bounded: --seconds (180) in all, loopback only, every child killed at the end.
 */
const seconds = numberOption('seconds', 180);
const stableCount = numberOption('stable', 2);
const churningCount = numberOption('churning', 3);
const restartMs = numberOption('restart-ms', 2000);
const callers = numberOption('callers', 8);
const sampleMs = numberOption('sample-ms', 5000);
const useEtcd = process.argv.includes('--etcd');
const transport = process.argv.includes('--grpc') ? 'grpc' : 'tcp';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const children = new Children();
const startChild = async (script: string, name: string, env: Record<string, string>): Promise<ChildProcess> => (await children.start(script, name, env)).child;

const etcd = useEtcd ? await startEtcd() : undefined;
const dir = mkdtempSync(path.join(tmpdir(), 'shuttle-soak-'));
const registry = etcd?.url ?? `file://${dir}`;
const env = { SOAK_REGISTRY: registry, SOAK_SAMPLE_MS: String(sampleMs), SOAK_TRANSPORT: transport };
const stable: ChildProcess[] = await Promise.all(Array.from({ length: stableCount }, () => startChild('provider.js', 'stable', env)));
const churning = await Promise.all(Array.from({ length: churningCount }, () => startChild('provider.js', 'churning', env)));
const churner = await startChild('client-churn.js', 'client-churn', { ...env, SOAK_SECONDS: String(seconds) });

const metrics = new ShuttleMetrics();
const client = await createClient({
  registry,
  config: false,
  log: false,
  loadbalance: 'prefix-affinity',
  transport,
  timeoutMs: 2000,
  filters: [{ type: 'metrics', options: { metrics } }],
  onAttempt: (event) => metrics.attempt(event),
  onRoute: (event) => metrics.route(event),
});
metrics.watchClient(client as never);
const api = client.proxy<SoakApi>('soak.Churn', { version: '1.0.0' });
const tally: Record<string, number> = {};
const count = (key: string): void => {
  tally[key] = (tally[key] ?? 0) + 1;
};

const end = performance.now() + seconds * 1000;
let restarts = 0;
let killed = 0;
async function churn(): Promise<void> {
  for (let i = 0; performance.now() < end - restartMs; i++) {
    await sleep(restartMs);
    const old = churning.shift()!;
    if (i % 3 === 2) {
      old.kill('SIGKILL');
      killed++;
    } else old.kill('SIGTERM');
    churning.push(await startChild('provider.js', 'churning', env));
    restarts++;
  }
}

async function caller(seed: number): Promise<void> {
  let n = seed;
  while (performance.now() < end) {
    n++;
    const kind = n % 5;
    const prompt = `${`system prompt ${n % 50} `.repeat(8)}question ${n}`;
    try {
      if (kind === 0) await api.echo({ n }, { timeoutMs: 1 + Math.floor(Math.random() * 200), routingKey: prompt });
      else if (kind === 1) {
        const abort = new AbortController();
        setTimeout(() => abort.abort(), Math.random() * 50);
        await api.sleep(Math.floor(Math.random() * 100), { signal: abort.signal });
      } else if (kind === 2) await api.fail(1 + Math.floor(Math.random() * 16));
      else if (kind === 3) {
        let chunks = 0;
        for await (const _ of api.count({ n: 50, delayMs: 5 }, { timeoutMs: 500 + Math.floor(Math.random() * 1000) })) if (++chunks >= 3) break;
      } else await api.echo('x'.repeat(Math.floor(Math.random() * 1000)), { routingKey: prompt });
      count('ok');
    } catch (error) {
      count(`code${(error as { code?: number }).code ?? '?'}`);
    }
  }
}

async function sampler(): Promise<void> {
  while (performance.now() < end) {
    const series = (await metrics.registry.getMetricsAsJSON()).reduce((total, metric) => total + metric.values.length, 0);
    const s: Sample = sample({ providersListed: client.providers().length, series, restarts, killed });
    children.record('consumer', line('consumer', s));
    if (process.env['SOAK_VERBOSE'] === '1') console.error(line('consumer', s), JSON.stringify(tally));
    await sleep(sampleMs);
  }
}

try {
  await Promise.all([churn(), sampler(), ...Array.from({ length: callers }, (_, i) => caller(i * 1000))]);
  const series = (await metrics.registry.getMetricsAsJSON()).reduce((total, metric) => total + metric.values.length, 0);
  children.record('consumer', line('consumer', sample({ providersListed: client.providers().length, series, restarts, killed })));
  if (churner.exitCode === null && churner.signalCode === null) await new Promise((resolve) => churner.once('exit', resolve));
} finally {
  await client.close();
  children.killAll();
  await sleep(200);
  await etcd?.remove();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`stable providers: ${stable.map((child) => child.pid).join(', ')}`);
console.log(`calls: ${JSON.stringify(tally)}`);
children.print((name) => !name.startsWith('churning#'));
const churned = [...children.samples].filter(([name]) => name.startsWith('churning#'));
console.log(`-- churning providers: ${churned.length} processes, ${churned.reduce((n, [, lines]) => n + lines.length, 0)} samples`);
console.log(`after close: ${line('consumer', sample())}`);
