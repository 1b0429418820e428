import { parseArgs } from 'node:util';
import { ShuttleMetrics, callOutcome, createClient, startAdminServer, type RouteEvent, type RpcError } from 'shuttle-rpc';
import type { LlmApi, Usage } from './llm.js';

/*
 * Replays a chat workload through the proxy: users share a few long system prompts and talk
 * for several turns (each turn's prompt is the growing history), `--concurrency` at a time.
 * Shows live progress, then a per-worker table and TTFT p50/p99, tokens/s, cache hits and
 * shed/failed counts. `--loadbalance` picks the policy (prefix-affinity by default).
 * `--admin-port N` (0: any free port) serves metrics and the live dashboard while it runs
 * (`admin http://127.0.0.1:N/dashboard` is printed) and keeps them up `--linger-ms` after.
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
});
const admin = metrics === undefined ? undefined : await startAdminServer({ metrics, clients: [client], port: Number(values['admin-port']) });
if (admin !== undefined) console.log(`admin ${admin.url}/dashboard`);
const llm = client.proxy<LlmApi>('inference.LLM', { version: '1.0.0', routingKey: 'prompt' });

interface Done {
  ttftMs: number;
  tokens: number;
  usage: Usage | undefined;
}
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
      results.push({ ttftMs, tokens, usage: (await call.trailer) as Usage | undefined });
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
const ttfts = results.map((result) => result.ttftMs).sort((a, b) => a - b);
const pick = (p: number): number => ttfts[Math.min(ttfts.length - 1, Math.floor(ttfts.length * p))] ?? NaN;
const totalPrompt = [...perWorker.values()].reduce((sum, entry) => sum + entry.prompt, 0);
const totalCached = [...perWorker.values()].reduce((sum, entry) => sum + entry.cached, 0);
const shed = failures.filter((error) => error.code === 8).length;

console.log(`\n${values.loadbalance}: ${results.length} requests in ${seconds.toFixed(1)} s`);
console.log('| worker | requests | output tokens | prompt cache hits |');
console.log('|---|---|---|---|');
for (const [name, entry] of [...perWorker].sort()) {
  console.log(`| ${name} | ${entry.requests} | ${entry.tokens} | ${((entry.cached / Math.max(1, entry.prompt)) * 100).toFixed(0)} % |`);
}
console.log(`TTFT p50 ${pick(0.5).toFixed(0)} ms, p99 ${pick(0.99).toFixed(0)} ms; ${(streamed / seconds).toFixed(0)} tokens/s; ` +
  `cache hits ${((totalCached / Math.max(1, totalPrompt)) * 100).toFixed(0)} % of prompt tokens; shed ${shed}, failed ${failures.length - shed}` +
  (failures.length > 0 ? ` (${failures.map((error) => `${callOutcome(error)}: ${error.message}`).slice(0, 3).join('; ')})` : ''));
console.log(`routing decisions: ${[...routes].map(([branch, count]) => `${branch} ${count}`).join(', ')}`);
if (admin !== undefined) {
  await new Promise((resolve) => setTimeout(resolve, Number(values['linger-ms'])));
  await admin.close();
}
await client.close();
process.exit(failures.length - shed > 0 ? 1 : 0);
