import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { prefixBlockHashes } from '../../src/loadbalance/hash.js';
import { realClock } from '../../src/sim/sim.js';
import { LOAD_PUSH_EVERY_MS } from '../../src/transport/transport.js';
import { numberOption } from '../common/common.js';
import { chart } from './chart.js';
import { demoCheck } from './demo-check.js';
import { FLEETS, type FleetName } from './fleet.js';
import { mustShow, type CaseResult } from './must-show.js';
import { SLO, simulate, type SimulateOptions } from './simulate.js';
import { median, percentile, summarise, type Summary } from './summary.js';
import { atRate, blockHasher, oracleHitRate, workload, type WorkItem, type WorkloadName } from './workloads.js';

/*
 * bench:routing — the load-balancing policies on simulated GPU workers, on the virtual clock,
 * seeded (the same inputs give the same figures). For each workload and fleet it finds
 * round-robin's saturation (the highest offered load at which it keeps 90 % of requests within
 * the SLO), then sweeps the offered load from 0.5x to 1.5x of it under every policy, with one
 * consumer; then 4 independent consumers at 1.0x and 1.3x; then a real-clock run of a small
 * case against its virtual-clock prediction, and the demo (real worker processes, real client)
 * against its virtual-clock replay (demo-check.ts). Workers publish their load and a summary of their
 * prefix cache on the registry's channel every 500 ms, and their load as the tcp transport's
 * LOAD frames carry it: on every answer, and every 50 ms to a consumer with calls running there.
 * Options (--help): --requests N (200 per run), --seeds N (1);
 * the figures in docs/BENCHMARKS.md use --requests 300 --seeds 3. A full sweep writes
 * docs/routing-<workload>-<fleet>.svg; --cases, --loads, --policies, --no-consumers,
 * --no-clock-check, --demo-runs and --no-demo run a part of it (no charts, and target lines only
 * where their figures were run).
 */
const args = process.argv.slice(2);
const USAGE = `bench:routing [options]
  --requests N         requests a run (200)
  --seeds N            seeds a cell, figures are medians (1)
  --cases a/f,...      workload/fleet cases (all: b2b/uniform, multi-turn/uniform, b2b/mixed, multi-turn/mixed, hot/mixed, unique/mixed)
  --loads x,...        offered loads, multiples of round-robin's saturation (0.5,0.75,1,1.15,1.3,1.5)
  --policies p,...     policies (all); round-robin always runs (it sets the saturation)
  --no-consumers       skip the 4-consumer rows (1x and 1.3x, when those loads run)
  --no-clock-check     skip the real-clock vs virtual-clock check
  --demo-runs N        real demo runs for the demo check (the number of seeds)
  --no-demo            skip the demo check
Charts are written only by a full sweep.`;
if (args.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
const listOption = (name: string, fallback: readonly string[]): string[] => {
  const index = args.indexOf(`--${name}`);
  return index < 0 ? [...fallback] : (args[index + 1] ?? '').split(',').filter((entry) => entry !== '');
};
const requests = numberOption('requests', 200);
const seeds = numberOption('seeds', 1);
const ALL_POLICIES = ['round-robin', 'weighted-round-robin', 'least-active', 'p2c', 'prefix-affinity', 'slo'];
const ALL_LOADS = [0.5, 0.75, 1, 1.15, 1.3, 1.5];
const ALL_CASES: Array<{ name: WorkloadName; fleet: FleetName }> = [
  { name: 'b2b', fleet: 'uniform' },
  { name: 'multi-turn', fleet: 'uniform' },
  { name: 'b2b', fleet: 'mixed' },
  { name: 'multi-turn', fleet: 'mixed' },
  { name: 'hot', fleet: 'mixed' },
  { name: 'unique', fleet: 'mixed' },
];
const chosenPolicies = listOption('policies', ALL_POLICIES);
const POLICIES = ALL_POLICIES.filter((policy) => policy === 'round-robin' || chosenPolicies.includes(policy));
const LOADS = listOption('loads', ALL_LOADS.map(String)).map(Number);
const chosenCases = listOption(
  'cases',
  ALL_CASES.map(({ name, fleet }) => `${name}/${fleet}`),
);
const CASES = ALL_CASES.filter(({ name, fleet }) => chosenCases.includes(`${name}/${fleet}`));
const full = POLICIES.length === ALL_POLICIES.length && LOADS.length === ALL_LOADS.length && CASES.length === ALL_CASES.length;
const hashBlocks = (prompt: string): number[] => prefixBlockHashes(prompt, 64, 4096);
/**
 * What the tcp transport tells consumers besides the registry's 500 ms channel: each worker's
 * load on every answer, and every 50 ms to a consumer with calls running there (LOAD frames).
 */
const TRANSPORT_LOAD = { piggyback: true, pushLoadMs: LOAD_PUSH_EVERY_MS } as const;
const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** Round-robin's saturation: the highest rate (req/s) at which it keeps 90 % of requests within the SLO. */
async function saturation(items: readonly WorkItem[], options: SimulateOptions): Promise<number> {
  const ok = async (rate: number): Promise<boolean> => {
    const run = await simulate('round-robin', atRate(items, rate), options);
    return run.good >= 0.9 * items.length;
  };
  let low = 0.25;
  let high = 0.5;
  while (high < 512 && (await ok(high))) [low, high] = [high, high * 2];
  for (let step = 0; step < 5; step++) {
    const middle = (low + high) / 2;
    if (await ok(middle)) low = middle;
    else high = middle;
  }
  return low;
}

const started = performance.now();
const lines: string[] = [
  `SLO: TTFT <= ${SLO.ttftMs} ms and mean inter-token latency <= ${SLO.itlMs} ms. ${requests} requests a run, ${seeds} seed(s), medians over seeds.`,
];
const results: CaseResult[] = [];
for (const { name, fleet } of CASES) {
  const specs = FLEETS[fleet];
  const blocks = blockHasher(hashBlocks);
  const bySeed = Array.from({ length: seeds }, (_, s) => workload(name, s + 1, requests));
  const sat = await saturation(bySeed[0]!, { fleet: specs, blocks });
  const oracle = median(bySeed.map((items) => oracleHitRate(items, blocks)));
  log(`${name} on ${fleet}: round-robin saturates at ${sat.toFixed(2)} req/s; oracle hit rate ${(oracle * 100).toFixed(0)} %`);
  lines.push(`\n### ${name}, ${fleet} fleet — round-robin saturates at ${sat.toFixed(2)} req/s; oracle cache hit ${(oracle * 100).toFixed(0)} %\n`);
  lines.push('| load | req/s | policy | goodput req/s | TTFT p50 / p99 ms | ITL p99 ms | cache hit (of oracle) | hottest / its slot share | shed |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  const byLoad = new Map<number, Map<string, Summary>>();
  for (const load of LOADS) {
    const rate = sat * load;
    const summaries = new Map<string, Summary>();
    for (const policy of POLICIES) {
      if (policy === 'weighted-round-robin' && fleet === 'uniform') continue;
      const runs = [];
      for (let s = 0; s < seeds; s++) runs.push(await simulate(policy, atRate(bySeed[s]!, rate), { fleet: specs, seed: s + 1, blocks, ...TRANSPORT_LOAD }));
      const summary = summarise(runs, specs);
      summaries.set(policy, summary);
      lines.push(
        `| ${load}x | ${rate.toFixed(1)} | ${policy} | ${summary.goodput.toFixed(2)} | ${summary.ttft50.toFixed(0)} / ${summary.ttft99.toFixed(0)} | ${summary.itl99.toFixed(1)} | ` +
          `${(summary.hit * 100).toFixed(0)} % (${((summary.hit / Math.max(oracle, 1e-9)) * 100).toFixed(0)} %) | ${summary.hottest.toFixed(2)} | ${summary.shed} |`,
      );
    }
    // On a uniform fleet slot-weighted round-robin is round-robin: the same picks, not run twice.
    if (fleet === 'uniform') summaries.set('weighted-round-robin', summaries.get('round-robin')!);
    byLoad.set(load, summaries);
    log(
      `  ${load}x: ${POLICIES.filter((policy) => summaries.has(policy))
        .map((policy) => `${policy} ${summaries.get(policy)!.goodput.toFixed(1)}`)
        .join(', ')}`,
    );
  }
  // Four independent consumers against one consumer, at 1.0x and 1.3x, for the cache-aware policies.
  const consumers = new Map<string, { single: number; four: number }>();
  for (const load of name === 'unique' || args.includes('--no-consumers') ? [] : [1, 1.3].filter((load) => byLoad.has(load))) {
    for (const policy of ['prefix-affinity', 'slo'].filter((policy) => byLoad.get(load)!.has(policy))) {
      const runs = [];
      for (let s = 0; s < seeds; s++)
        runs.push(await simulate(policy, atRate(bySeed[s]!, sat * load), { fleet: specs, seed: s + 1, blocks, consumers: 4, ...TRANSPORT_LOAD }));
      const four = summarise(runs, specs);
      consumers.set(`${policy}@${load}`, { single: byLoad.get(load)!.get(policy)!.hit, four: four.hit });
      lines.push(
        `| ${load}x | ${(sat * load).toFixed(1)} | ${policy}, 4 consumers | ${four.goodput.toFixed(2)} | ${four.ttft50.toFixed(0)} / ${four.ttft99.toFixed(0)} | ${four.itl99.toFixed(1)} | ${(four.hit * 100).toFixed(0)} % (${((four.hit / Math.max(oracle, 1e-9)) * 100).toFixed(0)} %) | ${four.hottest.toFixed(2)} | ${four.shed} |`,
      );
    }
  }
  results.push({ name, fleet, oracle, byLoad, consumers });
  if (!full) continue;
  const line = (key: 'goodput' | 'ttft99') =>
    new Map(POLICIES.map((policy) => [policy, LOADS.map((load) => [load, byLoad.get(load)!.get(policy)![key]] as const)]));
  const svg = chart(`bench:routing — ${name} on the ${fleet} fleet (round-robin saturates at ${sat.toFixed(1)} req/s)`, [
    { title: `goodput (TTFT <= ${SLO.ttftMs} ms, ITL <= ${SLO.itlMs} ms)`, unit: 'req/s', lines: line('goodput') },
    { title: 'TTFT p99', unit: 'ms (log)', lines: line('ttft99'), log: true },
  ]);
  writeFileSync(fileURLToPath(new URL(`../../../docs/routing-${name}-${fleet}.svg`, import.meta.url)), svg);
}

lines.push('\n### Must show\n', ...mustShow(results));

if (!args.includes('--no-clock-check')) await clockCheck();
if (!args.includes('--no-demo')) lines.push('', ...(await demoCheck('slo', numberOption('demo-runs', seeds))));
lines.push(`\nWall time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
console.log(lines.join('\n'));

/** Real clock against virtual clock on a small case: the simulator's prediction, checked. */
async function clockCheck(): Promise<void> {
  const small = atRate(workload('b2b', 99, 40), 3);
  const two = [FLEETS.uniform[0]!, FLEETS.uniform[1]!];
  const virtualRun = await simulate('slo', small, { fleet: two });
  const realRun = await simulate('slo', small, { fleet: two, clock: realClock });
  const apart = (real: number, virtual: number): string => `${((Math.abs(real - virtual) / Math.max(virtual, 1e-9)) * 100).toFixed(1)} %`;
  const hit = (run: typeof realRun): number => run.cachedTokens / Math.max(1, run.promptTokens);
  const p99 = (run: typeof realRun): number => percentile(run.ttft, 0.99);
  lines.push(
    `\nReal clock vs virtual clock (b2b, 40 requests at 3/s, two 8-slot workers, slo): TTFT p50 ${median(realRun.ttft).toFixed(0)} ms real, ${median(virtualRun.ttft).toFixed(0)} ms virtual ` +
      `(${apart(median(realRun.ttft), median(virtualRun.ttft))} apart); TTFT p99 ${p99(realRun).toFixed(0)} ms real, ${p99(virtualRun).toFixed(0)} ms virtual (${apart(p99(realRun), p99(virtualRun))} apart); ` +
      `cache hit ${(hit(realRun) * 100).toFixed(1)} % real, ${(hit(virtualRun) * 100).toFixed(1)} % virtual (${apart(hit(realRun), hit(virtualRun))} apart).`,
  );
}
