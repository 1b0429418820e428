import { LiveProviderStats } from '../../src/client/provider-stats.js';
import type { ProviderView } from '../../src/loadbalance/loadbalance.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { defaultExtensions } from '../../src/spi/extensions.js';
import { createInvocation, type Invocation } from '../../src/call/invocation.js';
import { numberOption } from '../common/common.js';

/*
 * bench:lb — decision time per call of every load-balancing policy, with 64 providers and
 * 16 KiB prompts (12 KiB from one of 32 shared system prompts + 4 KiB unique), on one core
 * (this process). Each timed decision includes everything the client does per call for the
 * balancer: the select (hashing the prompt for prefix-affinity, the index walk and update) and
 * the bookkeeping of the chosen provider's stats. Calls complete at random so about 256 are in
 * flight. Options: --decisions N (default 20000 per policy), --policy NAME (only that one, e.g.
 * under --cpu-prof), --providers N (default 64). npm run bench:lb runs it with --expose-gc to collect the heap between
 * policies.
 */
const decisions = numberOption('decisions', 20_000);
const only = process.argv.includes('--policy') ? process.argv[process.argv.indexOf('--policy') + 1] : undefined;
const PROVIDERS = numberOption('providers', 64);
const now = Date.now();

function providers(): Array<ProviderView & { stats: LiveProviderStats }> {
  return Array.from({ length: PROVIDERS }, (_, i) => {
    const instance: ServiceInstance = {
      service: 'inference.LLM',
      version: '1.0.0',
      group: '',
      host: '10.0.0.1',
      port: 20_000 + i,
      protocol: 'tcp',
      serializers: ['msgpack'],
      methods: [],
      weight: 100,
      startTime: now - 3_600_000,
      metadata: { slots: 16, kvCapacityTokens: 400_000 },
      load: {
        timestamp: now,
        receivedAt: now,
        running: i % 8,
        waiting: i % 3,
        waitingUncachedTokens: (i % 5) * 1000,
        kvUsage: 0.5,
        tokensPerSecond: 800,
        draining: false,
      },
    };
    const stats = new LiveProviderStats();
    stats.observeLoad(instance.load);
    return { instance, address: `10.0.0.1:${instance.port}`, stats };
  });
}

const systems = Array.from({ length: 32 }, (_, i) => `system ${i} `.padEnd(12 * 1024, `policy ${i} and style rules; `));
// Flat strings, as prompts decoded from JSON or msgpack are; a string built by concatenation
// is flattened by V8 on its first character access (about 60 µs for 16 KiB), a one-time cost
// the serializer would pay anyway.
const flat = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');
const prompts = Array.from({ length: 4000 }, (_, i) => flat(`${systems[(i * 7919) % 32]!}user ${i}: `.padEnd(16 * 1024, `${i} question text `)));

function invocationFor(prompt: string): Invocation {
  return createInvocation({ service: 'inference.LLM', version: '1.0.0', method: 'generate', request: { prompt }, stream: true, routingKey: prompt });
}

const rows: string[] = ['| policy | mean µs | p50 µs | p99 µs | max µs |', '|---|---|---|---|---|'];
for (const name of only === undefined ? defaultExtensions().loadbalance.names() : [only]) {
  // Each policy starts from a collected heap, so one policy's garbage is not another's pause.
  (globalThis as { gc?: () => void }).gc?.();
  const balancer = defaultExtensions().loadbalance.create(name);
  const views = providers();
  const inFlight: Array<{ stats: LiveProviderStats; tokens: number }> = [];
  const times = new Float64Array(decisions);
  for (let i = -2000; i < decisions; i++) {
    const invocation = invocationFor(prompts[(i + 2000) % prompts.length]!);
    const tokens = Math.ceil(invocation.routingKey!.length / 4);
    const started = process.hrtime.bigint();
    const chosen = balancer.select(views, invocation).provider as (typeof views)[number];
    chosen.stats.start(tokens);
    const elapsed = Number(process.hrtime.bigint() - started) / 1000;
    if (i >= 0) times[i] = elapsed;
    inFlight.push({ stats: chosen.stats, tokens });
    if (inFlight.length > 256) {
      const done = inFlight.splice(Math.floor(Math.random() * inFlight.length), 1)[0]!;
      done.stats.end(done.tokens, 100, now, false);
    }
  }
  const sorted = Array.from(times).sort((a, b) => a - b);
  const pick = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  rows.push(`| ${name} | ${mean.toFixed(1)} | ${pick(0.5).toFixed(1)} | ${pick(0.99).toFixed(1)} | ${sorted.at(-1)!.toFixed(1)} |`);
}
console.log(rows.join('\n'));
