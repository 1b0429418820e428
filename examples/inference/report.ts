import Table from 'cli-table3';

/** What one run of the chat workload did, as the consumer reports it (also as JSON for the demo's comparison). */
export interface RunSummary {
  readonly policy: string;
  readonly requests: number;
  readonly seconds: number;
  readonly workers: ReadonlyArray<{ name: string; requests: number; tokens: number; cacheHitPercent: number }>;
  readonly ttftP50Ms: number;
  readonly ttftP99Ms: number;
  /** TTFT p99 of the calls after the first round (one per lane, made at once when the run starts). */
  readonly ttftP99AfterStartMs: number;
  readonly tokensPerSecond: number;
  readonly cacheHitPercent: number;
  readonly shed: number;
  readonly failed: number;
  /** Routing decisions by branch (hit, spill, cold, pick…). */
  readonly routes: Readonly<Record<string, number>>;
}

/** What each routing branch means, printed under the tables. */
export const ROUTE_LEGEND = [
  "hit    the worker most likely to still hold the prompt's prefix in its KV cache took it (prefill skipped for the shared part)",
  'spill  that worker was too loaded, so the least loaded one took it (and computes the prefix again)',
  'cold   no worker held the prefix yet, so the least loaded one took it',
  'pick   a policy without cache knowledge chose (round-robin, random, p2c…)',
].join('\n');

const style = { head: [], border: [] };

/** The per-worker table of one run, drawn for a terminal (aligned, as the `shuttle` command draws). */
export function workerTable(summary: RunSummary): string {
  const table = new Table({ head: ['worker', 'requests', 'output tokens', 'prompt cache hits'], colAligns: ['left', 'right', 'right', 'right'], style });
  for (const worker of summary.workers) table.push([worker.name, String(worker.requests), String(worker.tokens), `${worker.cacheHitPercent} %`]);
  return table.toString();
}

/** One line of totals. */
export function totalsLine(summary: RunSummary): string {
  return `TTFT p50 ${summary.ttftP50Ms} ms, p99 ${summary.ttftP99Ms} ms (after the first round ${summary.ttftP99AfterStartMs} ms); ${summary.tokensPerSecond} tokens/s; cache hits ${summary.cacheHitPercent} % of prompt tokens; shed ${summary.shed}, failed ${summary.failed}`;
}

/** `hit 120, spill 4, cold 20`. */
export function routesLine(summary: RunSummary): string {
  return Object.entries(summary.routes)
    .map(([branch, count]) => `${branch} ${count}`)
    .join(', ');
}

/** Two or more runs side by side, one column per policy, with the ratio to the first for the headline numbers. */
export function comparisonTable(runs: readonly RunSummary[]): string {
  const table = new Table({ head: ['', ...runs.map((run) => run.policy)], colAligns: ['left', ...runs.map(() => 'right' as const)], style });
  const row = (label: string, value: (run: RunSummary) => string): void => void table.push([label, ...runs.map(value)]);
  const ratio = (value: number, base: number): string => (runs.length > 1 && base > 0 ? ` (${(value / base).toFixed(2)}x)` : '');
  const first = runs[0]!;
  row('requests', (run) => String(run.requests));
  row('wall time', (run) => `${run.seconds.toFixed(1)} s`);
  row('TTFT p50', (run) => `${run.ttftP50Ms} ms${run === first ? '' : ratio(run.ttftP50Ms, first.ttftP50Ms)}`);
  row('TTFT p99', (run) => `${run.ttftP99Ms} ms${run === first ? '' : ratio(run.ttftP99Ms, first.ttftP99Ms)}`);
  row('tokens/s', (run) => `${run.tokensPerSecond}${run === first ? '' : ratio(run.tokensPerSecond, first.tokensPerSecond)}`);
  row('prompt cache hits', (run) => `${run.cacheHitPercent} %`);
  row('routing', (run) => routesLine(run) || '-');
  row('shed / failed', (run) => `${run.shed} / ${run.failed}`);
  for (const name of [...new Set(runs.flatMap((run) => run.workers.map((worker) => worker.name)))].sort()) {
    row(`requests on ${name}`, (run) => String(run.workers.find((worker) => worker.name === name)?.requests ?? 0));
  }
  return table.toString();
}
