import { parseArgs } from 'node:util';
import { ShuttleMetrics, callOutcome, createClient, startAdminServer, type AttemptEvent, type RouteEvent, type RpcError } from 'shuttle-rpc';
import type { LlmApi, Usage } from './llm.js';
import { ROUTE_LEGEND, routesLine, totalsLine, workerTable, type RunSummary } from './report.js';

/*
 * Replays a chat workload through the proxy: users share a few long system prompts and talk
 * for several turns (each turn's prompt is the growing history), `--concurrency` at a time.
 * Shows live progress, then a per-worker table and TTFT p50/p99, tokens/s, cache hits and
 * shed/failed counts. `--loadbalance` picks the policy (prefix-affinity by default).
 * `--admin-port N` (0: any free port) serves metrics and the live dashboard while it runs
 * (`admin http://127.0.0.1:N/dashboard` is printed) and keeps them up `--linger-ms` after.
 * `--summary-json` adds the summary as one `{"summary": …}` line (the demo's comparison reads it).
 * Before the timed run it makes one small call to each worker (a warm start, see below).
 */
const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '36' },
    turns: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '12' },
    loadbalance: { type: 'string', default: 'prefix-affinity' },
    'max-tokens': { type: 'string', default: '48' },
    'admin-port': { type: 'string' },
    'linger-ms': { type: 'string', default: '0' },
    'summary-json': { type: 'boolean', default: false },
  },
});
const users = Number(values.users);
const turns = Number(values.turns);
const maxTokens = Number(values['max-tokens']);

const systems = Array.from({ length: 4 }, (_, i) => `System prompt ${i}: you are assistant #${i}. `.padEnd(8000, `Follow policy ${i} carefully. `));
const routes = new Map<string, number>();
const metrics = values['admin-port'] === undefined ? undefined : new ShuttleMetrics();
const client = await createClient({
  loadbalance: values.loadbalance,
  timeoutMs: 60_000,
  ...(metrics === undefined ? {} : { filters: [{ type: 'metrics', options: { metrics } }] }),
  onRoute: (event: RouteEvent) => {
    routes.set(event.decision.branch, (routes.get(event.decision.branch) ?? 0) + 1);
    metrics?.route(event);
  },
  // Per-worker attempts, failures and broken streams, for the dashboard.
  ...(metrics === undefined
    ? {}
    : { onAttempt: (event: AttemptEvent) => metrics.attempt(event), onStreamBreak: (event: AttemptEvent) => metrics.attempt(event) }),
});
const admin = metrics === undefined ? undefined : await startAdminServer({ metrics, clients: [client], port: Number(values['admin-port']) });
if (admin !== undefined) console.log(`admin ${admin.url}/dashboard`);
const llm = client.proxy<LlmApi>('inference.LLM', { version: '1.0.0', routingKey: 'prompt' });

interface Done {
  /** When the call was made, ms since the run started. */
  startMs: number;
  ttftMs: number;
  tokens: number;
  usage: Usage | undefined;
}
// A warm start, as a gateway makes before it reports ready: wait for the registry's list of
// workers, then make one small call to each, which opens its connection and brings back its
// first load report. The timed run then starts with the fleet known and connected, not paying
// discovery, connection set-up and first-run code on its first calls (bench:routing's demo
// check replays the timed run on the virtual clock, which models none of those). The calls go
// out at once through a least-active reference, so each takes a worker none of the others has;
// a worker that does not answer in 5 s is left to the run's own failover.
await client.ready();
const fleetSize = client.providers().filter((provider) => provider.service === 'inference.LLM').length;
const spread = client.proxy<LlmApi>('inference.LLM', { version: '1.0.0', loadbalance: 'least-active', timeoutMs: 5000 });
await Promise.all(Array.from({ length: fleetSize }, () => spread.embed({ text: 'warm-up' }).catch(() => undefined)));
// The routing summary below is the timed run's.
routes.clear();
const results: Done[] = [];
const failures: RpcError[] = [];
const started = performance.now();
let streamed = 0;

const progress = setInterval(() => {
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`  ${results.length + failures.length}/${users * turns} requests, ${streamed} tokens, ${(streamed / seconds).toFixed(0)} tokens/s\n`);
}, 1000);

async function user(id: number): Promise<void> {
  let history = `${systems[id % systems.length]!}\n`;
  for (let turn = 0; turn < turns; turn++) {
    history += `User ${id}, turn ${turn}: ${'please explain routing and caching '.repeat(8)}\n`;
    const requestStart = performance.now();
    let ttftMs = 0;
    let tokens = 0;
    let answer = '';
    try {
      const call = llm.generate({ prompt: history, maxTokens });
      for await (const token of call) {
        if (tokens === 0) ttftMs = performance.now() - requestStart;
        tokens++;
        streamed++;
        answer += token.text;
      }
      results.push({ startMs: requestStart - started, ttftMs, tokens, usage: (await call.trailer) as Usage | undefined });
      history += `Assistant: ${answer}\n`;
    } catch (error) {
      failures.push(error as RpcError);
    }
  }
}

const queue = Array.from({ length: users }, (_, i) => i);
await Promise.all(
  Array.from({ length: Number(values.concurrency) }, async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await user(next);
  }),
);
clearInterval(progress);
const seconds = (performance.now() - started) / 1000;

const perWorker = new Map<string, { requests: number; tokens: number; prompt: number; cached: number }>();
for (const result of results) {
  const name = result.usage?.worker ?? '?';
  const entry = perWorker.get(name) ?? { requests: 0, tokens: 0, prompt: 0, cached: 0 };
  entry.requests++;
  entry.tokens += result.tokens;
  entry.prompt += result.usage?.promptTokens ?? 0;
  entry.cached += result.usage?.cachedTokens ?? 0;
  perWorker.set(name, entry);
}
const percentile = (values: number[], p: number): number => values.sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] ?? NaN;
const ttfts = results.map((result) => result.ttftMs);
const pick = (p: number): number => percentile(ttfts, p);
// The first round (one call per lane, all at once on cold caches in freshly started processes) apart.
const afterStart = [...results]
  .sort((a, b) => a.startMs - b.startMs)
  .slice(Number(values.concurrency))
  .map((result) => result.ttftMs);
const totalPrompt = [...perWorker.values()].reduce((sum, entry) => sum + entry.prompt, 0);
const totalCached = [...perWorker.values()].reduce((sum, entry) => sum + entry.cached, 0);
const shed = failures.filter((error) => error.code === 8).length;

const summary: RunSummary = {
  policy: values.loadbalance!,
  requests: results.length,
  seconds: Math.round(seconds * 10) / 10,
  workers: [...perWorker].sort().map(([name, entry]) => ({
    name,
    requests: entry.requests,
    tokens: entry.tokens,
    cacheHitPercent: Math.round((entry.cached / Math.max(1, entry.prompt)) * 100),
  })),
  ttftP50Ms: Math.round(pick(0.5)),
  ttftP99Ms: Math.round(pick(0.99)),
  ttftP99AfterStartMs: Math.round(percentile(afterStart, 0.99)),
  tokensPerSecond: Math.round(streamed / seconds),
  cacheHitPercent: Math.round((totalCached / Math.max(1, totalPrompt)) * 100),
  shed,
  failed: failures.length - shed,
  routes: Object.fromEntries(routes),
};
console.log(`\n${values.loadbalance}: ${results.length} requests in ${seconds.toFixed(1)} s`);
console.log(workerTable(summary));
console.log(
  totalsLine(summary) +
    (failures.length > 0
      ? ` (${failures
          .map((error) => `${callOutcome(error)}: ${error.message}`)
          .slice(0, 3)
          .join('; ')})`
      : ''),
);
console.log(`routing decisions: ${routesLine(summary)}`);
console.log(
  ROUTE_LEGEND.split('\n')
    .map((line) => `  ${line}`)
    .join('\n'),
);
if (values['summary-json']) console.log(JSON.stringify({ summary }));
if (admin !== undefined) {
  await new Promise((resolve) => setTimeout(resolve, Number(values['linger-ms'])));
  await admin.close();
}
await client.close();
process.exit(failures.length - shed > 0 ? 1 : 0);
