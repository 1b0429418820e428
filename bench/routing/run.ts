import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { realClock } from '../../src/sim/sim.js';
import { numberOption } from '../common/common.js';
import { SLO, simulate, type RunResult } from './simulate.js';
import { workload, type WorkloadName } from './workloads.js';

/*
 * bench:routing — the load-balancing policies on simulated GPU workers (8 workers, 8 slots,
 * 200k KV tokens each), on the virtual clock: the same seeded workloads under every policy, at
 * several offered loads, 3 seeds each. Then a real-clock run of a small case, to check that
 * the virtual clock tells the truth (TTFT p50 within 15 %). Options: --requests N (600 per run),
 * --seeds N (3). Writes docs/routing-b2b.svg.
 */
const requests = numberOption('requests', 600);
const seeds = numberOption('seeds', 3);
const policies = ['random', 'round-robin', 'least-active', 'p2c', 'consistent-hash', 'prefix-affinity'];
const loads: Record<WorkloadName, number[]> = { b2b: [8, 16, 24], 'multi-turn': [20, 40, 60], unique: [8, 16, 24] };

interface Summary {
  ttft50: number;
  ttft90: number;
  ttft99: number;
  itl50: number;
  itl99: number;
  tokensPerSecond: number;
  goodput: number;
  goodputs: number[];
  success: number;
  shed: number;
  hit: number;
  hottest: number;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
};
const median = (values: number[]): number => percentile(values, 0.5);

function summarise(runs: RunResult[]): Summary {
  const each = runs.map((run) => ({
    ttft50: percentile(run.ttft, 0.5),
    ttft90: percentile(run.ttft, 0.9),
    ttft99: percentile(run.ttft, 0.99),
    itl50: percentile(run.itl, 0.5),
    itl99: percentile(run.itl, 0.99),
    tokensPerSecond: run.outputTokens / (run.durationMs / 1000),
    goodput: run.good / (run.durationMs / 1000),
    success: run.completed / (run.completed + run.shed),
    shed: run.shed,
    hit: run.cachedTokens / Math.max(1, run.promptTokens),
    hottest: Math.max(...run.perWorker) / Math.max(1, run.perWorker.reduce((sum, count) => sum + count, 0)),
  }));
  const pick = (key: keyof (typeof each)[number]): number => median(each.map((entry) => entry[key]));
  return {
    ttft50: pick('ttft50'), ttft90: pick('ttft90'), ttft99: pick('ttft99'), itl50: pick('itl50'), itl99: pick('itl99'),
    tokensPerSecond: pick('tokensPerSecond'), goodput: pick('goodput'), goodputs: each.map((entry) => entry.goodput),
    success: pick('success'), shed: pick('shed'), hit: pick('hit'), hottest: pick('hottest'),
  };
}

const lines: string[] = [];
const chart = new Map<string, Array<[number, number]>>();
for (const name of Object.keys(loads) as WorkloadName[]) {
  lines.push(`\n### Workload ${name}\n`);
  lines.push('| req/s | policy | TTFT p50 / p90 / p99 ms | ITL p50 / p99 ms | tokens/s | goodput req/s (seeds) | success | shed | cache hit | hottest worker |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const rate of loads[name]) {
    const summaries = new Map<string, Summary>();
    for (const policy of policies) {
      const runs: RunResult[] = [];
      for (let seed = 1; seed <= seeds; seed++) runs.push(await simulate(policy, workload(name, seed, requests, rate)));
      summaries.set(policy, summarise(runs));
      process.stderr.write(`${name} ${rate}/s ${policy}: goodput ${summaries.get(policy)!.goodput.toFixed(1)}\n`);
    }
    const best = [...summaries].sort((a, b) => b[1].goodput - a[1].goodput)[0]!;
    for (const [policy, s] of summaries) {
      // A policy ties with the best when their goodput ranges over the seeds overlap.
      const tie = policy !== best[0] && Math.max(...s.goodputs) >= Math.min(...best[1].goodputs);
      const mark = policy === best[0] ? ' **best**' : tie ? ' (tie)' : '';
      lines.push(
        `| ${rate} | ${policy} | ${s.ttft50.toFixed(0)} / ${s.ttft90.toFixed(0)} / ${s.ttft99.toFixed(0)} | ${s.itl50.toFixed(1)} / ${s.itl99.toFixed(1)} | ${s.tokensPerSecond.toFixed(0)} | ` +
          `${s.goodput.toFixed(1)} (${Math.min(...s.goodputs).toFixed(1)}–${Math.max(...s.goodputs).toFixed(1)})${mark} | ${(s.success * 100).toFixed(1)} % | ${s.shed} | ${(s.hit * 100).toFixed(0)} % | ${(s.hottest * 100).toFixed(0)} % |`,
      );
      if (name === 'b2b') chart.set(policy, [...(chart.get(policy) ?? []), [rate, s.goodput]]);
    }
  }
}

// Real clock against virtual clock on a small case.
const small = workload('b2b', 99, 40, 4);
const virtualRun = await simulate('prefix-affinity', small, { workers: 2 });
const realRun = await simulate('prefix-affinity', small, { workers: 2, clock: realClock });
const virtualTtft = median(virtualRun.ttft);
const realTtft = median(realRun.ttft);
const difference = Math.abs(realTtft - virtualTtft) / virtualTtft;
lines.push(
  `\nReal clock vs virtual clock (b2b, 40 requests at 4/s, 2 workers, prefix-affinity): TTFT p50 ${realTtft.toFixed(0)} ms real, ` +
    `${virtualTtft.toFixed(0)} ms virtual — ${(difference * 100).toFixed(1)} % apart (${difference <= 0.15 ? 'within' : 'NOT within'} 15 %).`,
);
lines.push(`\nSLO for goodput: TTFT <= ${SLO.ttftMs} ms and mean inter-token latency <= ${SLO.itlMs} ms.`);
console.log(lines.join('\n'));

// docs/routing-b2b.svg: goodput against offered load, one line per policy.
const width = 640;
const height = 360;
const maxRate = Math.max(...loads.b2b);
const maxGoodput = Math.max(1, ...[...chart.values()].flat().map(([, goodput]) => goodput));
const x = (rate: number): number => 60 + (rate / maxRate) * (width - 200);
const y = (goodput: number): number => height - 40 - (goodput / maxGoodput) * (height - 80);
const colours = ['#888', '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728'];
const svg = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  `<text x="${width / 2}" y="20" text-anchor="middle">Workload (a) b2b: goodput (req/s within SLO) vs offered load</text>`,
  `<line x1="60" y1="${height - 40}" x2="${width - 140}" y2="${height - 40}" stroke="black"/><line x1="60" y1="40" x2="60" y2="${height - 40}" stroke="black"/>`,
  ...loads.b2b.map((rate) => `<text x="${x(rate)}" y="${height - 22}" text-anchor="middle">${rate}</text>`),
  `<text x="${(width - 80) / 2}" y="${height - 5}" text-anchor="middle">offered load (req/s)</text>`,
  `<text x="15" y="${height / 2}" transform="rotate(-90 15 ${height / 2})" text-anchor="middle">goodput (req/s)</text>`,
  `<text x="55" y="${y(maxGoodput)}" text-anchor="end">${maxGoodput.toFixed(0)}</text>`,
  ...[...chart].flatMap(([policy, points], i) => [
    `<polyline fill="none" stroke="${colours[i % colours.length]}" stroke-width="2" points="${points.map(([rate, goodput]) => `${x(rate).toFixed(1)},${y(goodput).toFixed(1)}`).join(' ')}"/>`,
    `<text x="${width - 130}" y="${60 + i * 18}" fill="${colours[i % colours.length]}">${policy}</text>`,
  ]),
  '</svg>',
];
writeFileSync(fileURLToPath(new URL('../../../docs/routing-b2b.svg', import.meta.url)), `${svg.join('\n')}\n`);
