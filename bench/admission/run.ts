import type { EngineConfig } from '../../src/sim/sim.js';
import { SLOTS, WORKERS, simulateAdmission, type Outcome, type SimResult, type Stream } from './simulate.js';

/*
 * bench:admission — the admission queue in front of a simulated fleet (4 engines of 8 slots,
 * the sim's default 8B-model GPU), on the virtual clock, 3 seeds each:
 *   fairness: 4 light tenants at 3 req/s each and one heavy tenant at 30 req/s (10x) for 60 s,
 *     against the light tenants alone and against the same mix admitted first come, first served;
 *   priority: high priority at 3 req/s beside low priority at 45 req/s, against high alone:
 *     engines first come, first served (with and without slots reserved for high), then engines
 *     scheduling by priority with the queue letting high calls past a full fleet (overcommit).
 *     High calls are routed as a client routes urgent calls (to the engines computing the
 *     fewest prompts); the last two rows turn that off. The overload case on priority engines
 *     is then repeated with other step budgets (vLLM's max_num_batched_tokens), and with the
 *     fixed per-request cost spent in the front end;
 *   burst: 3x the fleet's capacity for 5 s.
 * `node build/bench/admission/run.js priority` runs one section (fairness, priority, burst;
 * burst measures capacity with the fairness runs).
 * Requests: 512 prompt tokens, 100 output tokens. Goodput counts requests whose TTFT (queue
 * wait included) is within the SLO.
 */
const SLO_TTFT_MS = 2000;
const SEEDS = [1, 2, 3];
const request = { promptTokens: 512, outputTokens: 100 };
const lights: Stream[] = ['light-1', 'light-2', 'light-3', 'light-4'].map((tenant) => ({ tenant, ratePerSecond: 3, toMs: 60_000, ...request }));
const heavy: Stream = { tenant: 'heavy', ratePerSecond: 30, toMs: 60_000, ...request };

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
};
const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / values.length;
const good = (outcomes: Outcome[], test: (o: Outcome) => boolean, seconds: number): number =>
  outcomes.filter((o) => test(o) && o.fate === 'served' && o.ttftMs! <= SLO_TTFT_MS).length / seconds;
const lost = (result: SimResult): number => result.outcomes.filter((o) => o.fate === 'lost').length;
const f = (value: number, digits = 1): string => (Number.isNaN(value) ? '-' : value.toFixed(digits));

interface RunOptions {
  deadlineMs: number;
  fifo?: boolean;
  maxQueued?: number;
  utilisationUntilMs: number;
  reserve?: { priority: number; slots: number };
  overcommit?: { priority: number; slots: number };
  engine?: Partial<EngineConfig>;
  urgentPriority?: number | false;
}

async function runSeeds(streams: Stream[], options: RunOptions): Promise<SimResult[]> {
  const results: SimResult[] = [];
  const maxQueued = options.maxQueued ?? 512;
  // FIFO: one tenant for all, so it may use the whole queue; fair share: each tenant up to half.
  const queue = {
    maxQueued,
    tenantDefaults: { maxQueued: options.fifo ? maxQueued : maxQueued / 2 },
    reserve: options.reserve,
    overcommit: options.overcommit,
  };
  for (const seed of SEEDS)
    results.push(
      await simulateAdmission(streams, {
        seed,
        deadlineMs: options.deadlineMs,
        fifo: options.fifo,
        queue,
        engine: options.engine,
        utilisationUntilMs: options.utilisationUntilMs,
        urgentPriority: options.urgentPriority,
      }),
    );
  return results;
}

const only = process.argv[2];
if (only !== undefined && !['fairness', 'priority', 'burst'].includes(only))
  throw new Error(`unknown section ${JSON.stringify(only)}: fairness, priority or burst`);
const runs = (section: string): boolean => only === undefined || only === section || (section === 'fairness' && only === 'burst');

const isLight = (o: Outcome): boolean => o.tenant.startsWith('light');
const served = (results: SimResult[], test: (o: Outcome) => boolean): number =>
  mean(results.map((r) => r.outcomes.filter((o) => test(o) && o.fate === 'served').length / 60));
console.log(`fleet: ${WORKERS} engines x ${SLOTS} slots; SLO: TTFT <= ${SLO_TTFT_MS} ms; seeds ${SEEDS.join(', ')}\n`);

/** The heavy-tenant runs; returns the fair-share runs (the burst sizes itself by them). */
async function fairness(): Promise<SimResult[]> {
  const alone = await runSeeds(lights, { deadlineMs: 30_000, utilisationUntilMs: 60_000 });
  const fair = await runSeeds([...lights, heavy], { deadlineMs: 30_000, utilisationUntilMs: 60_000 });
  const fifo = await runSeeds([...lights, heavy], { deadlineMs: 30_000, fifo: true, utilisationUntilMs: 60_000 });
  const row = (name: string, results: SimResult[]): string => {
    const light = mean(results.map((r) => good(r.outcomes, isLight, 60)));
    const heavyGood = mean(results.map((r) => good(r.outcomes, (o) => o.tenant === 'heavy', 60)));
    const heavyServed = served(results, (o) => o.tenant === 'heavy');
    const refused = mean(results.map((r) => r.outcomes.filter((o) => o.fate === 'refused').length));
    const timedOut = mean(results.map((r) => r.outcomes.filter((o) => o.fate === 'timed-out').length));
    const lightP99 = mean(
      results.map((r) =>
        percentile(
          r.outcomes.filter((o) => isLight(o) && o.fate === 'served').map((o) => o.ttftMs!),
          0.99,
        ),
      ),
    );
    return `| ${name} | ${f(light, 2)} | ${f(lightP99, 0)} | ${f(heavyGood, 2)} | ${f(heavyServed, 2)} | ${f(100 * mean(results.map((r) => r.utilisation)))} % | ${f(refused, 0)} | ${f(timedOut, 0)} | ${results.map(lost).reduce((a, b) => a + b, 0)} |`;
  };
  console.log('## Heavy tenant (30 req/s) beside 4 light tenants (3 req/s each), 60 s\n');
  console.log(
    '| run | light goodput at SLO, req/s | light TTFT p99, ms | heavy goodput at SLO, req/s | heavy served, req/s | fleet utilisation | refused (retry-after) | timed out | lost |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  console.log(row('light tenants alone', alone));
  console.log(row('with heavy, fair share', fair));
  console.log(row('with heavy, FIFO (no fairness)', fifo));
  const lightAlone = mean(alone.map((r) => good(r.outcomes, isLight, 60)));
  const lightFair = mean(fair.map((r) => good(r.outcomes, isLight, 60)));
  console.log(
    `\nlight goodput with heavy / alone: ${f((100 * lightFair) / lightAlone)} %; utilisation fair / FIFO: ${f((100 * mean(fair.map((r) => r.utilisation))) / mean(fifo.map((r) => r.utilisation)))} %\n`,
  );
  return fair;
}

/**
 * Length of the priority runs: 120 s gives ~360 high-priority calls a seed, so their p99 is the
 * 4th slowest rather than the slowest (30 s gave ~90).
 */
const PRIORITY_MS = 120_000;

async function priority(): Promise<void> {
  const high: Stream = { tenant: 'interactive', priority: 5, ratePerSecond: 3, toMs: PRIORITY_MS, ...request };
  const low: Stream = { tenant: 'batch', priority: 0, ratePerSecond: 45, toMs: PRIORITY_MS, ...request };
  const base = { deadlineMs: 30_000, utilisationUntilMs: PRIORITY_MS };
  const byPriority = { engine: { scheduling: 'priority' as const }, overcommit: { priority: 5, slots: 8 } };
  const cases: Array<[string, SimResult[]]> = [
    // Alone, high calls never meet lower-priority work: the same under either engine scheduling.
    ['high alone (unloaded)', await runSeeds([high], base)],
    ['overload, fcfs engines', await runSeeds([high, low], base)],
    ['overload, fcfs engines, 8 slots reserved for high', await runSeeds([high, low], { ...base, reserve: { priority: 5, slots: 8 } })],
    ['overload, priority engines, overcommit 8 for high', await runSeeds([high, low], { ...base, ...byPriority })],
    // The client's urgent-call rule off: high calls go to the least busy engine like any other.
    ['high alone, no urgent routing', await runSeeds([high], { ...base, urgentPriority: false })],
    ['overload, priority engines, overcommit 8, no urgent routing', await runSeeds([high, low], { ...base, ...byPriority, urgentPriority: false })],
  ];
  const ttft = (results: SimResult[], p: number, q: number): number =>
    mean(
      results.map((r) =>
        percentile(
          r.outcomes.filter((o) => o.priority === p && o.fate === 'served').map((o) => o.ttftMs!),
          q,
        ),
      ),
    );
  console.log(`## Priority: high at 3 req/s, low at 45 req/s (1.3x capacity), ${PRIORITY_MS / 1000} s\n`);
  console.log(
    '| run | high TTFT p50, ms | high TTFT p99, ms | high p99 / unloaded | low TTFT p50, ms | low TTFT p99, ms | low refused | low preempted | fleet utilisation | lost |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const unloadedP99 = ttft(cases[0]![1], 5, 0.99);
  for (const [name, results] of cases) {
    const refused = mean(results.map((r) => r.outcomes.filter((o) => o.priority === 0 && o.fate === 'refused').length));
    const preempted = mean(results.map((r) => r.outcomes.filter((o) => o.priority === 0 && o.preemptions > 0).length));
    // Against the unloaded run with the same routing.
    const unloaded = name.includes('no urgent routing') ? ttft(cases[4]![1], 5, 0.99) : unloadedP99;
    const ratio = results.some((r) => r.outcomes.some((o) => o.priority === 0)) ? `${f(ttft(results, 5, 0.99) / unloaded, 2)}x` : '';
    console.log(
      `| ${name} | ${f(ttft(results, 5, 0.5), 0)} | ${f(ttft(results, 5, 0.99), 0)} | ${ratio} | ${f(ttft(results, 0, 0.5), 0)} | ${f(ttft(results, 0, 0.99), 0)} | ${f(refused, 0)} | ${f(preempted, 0)} | ${f(100 * mean(results.map((r) => r.utilisation)))} % | ${results.map(lost).reduce((a, b) => a + b, 0)} |`,
    );
  }
  console.log('');
  await engineVariants(high, low, base, unloadedP99);
}

/**
 * The priority-engine overload case again on engines with other step budgets, and with the
 * fixed per-request cost spent in the front end instead of in the steps: how long an urgent
 * call waits for the step in progress is what separates it from its unloaded TTFT.
 */
async function engineVariants(high: Stream, low: Stream, base: RunOptions, defaultUnloadedP99: number): Promise<void> {
  const frontEnd = { requestOverheadMs: 30, prefillOverheadMs: 0 };
  const variants: Array<[string, string, Partial<EngineConfig>]> = [
    ['2048 (default)', 'in prefill steps', {}],
    ['1024', 'in prefill steps', { maxBatchedTokens: 1024 }],
    ['512', 'in prefill steps', { maxBatchedTokens: 512 }],
    ['256', 'in prefill steps', { maxBatchedTokens: 256 }],
    ['2048', 'in the front end', { ...frontEnd }],
    ['512', 'in the front end', { ...frontEnd, maxBatchedTokens: 512 }],
    ['256', 'in the front end', { ...frontEnd, maxBatchedTokens: 256 }],
    ['128', 'in the front end', { ...frontEnd, maxBatchedTokens: 128 }],
  ];
  const ttft = (results: SimResult[], p: number, q: number): number =>
    mean(
      results.map((r) =>
        percentile(
          r.outcomes.filter((o) => o.priority === p && o.fate === 'served').map((o) => o.ttftMs!),
          q,
        ),
      ),
    );
  console.log(`### Priority engines with overcommit 8, by step budget (max batched tokens) and where the 30 ms fixed cost is spent
`);
  console.log(
    `| step budget | fixed cost | high alone p50 / p99, ms | overload high p50 / p99, ms | p99 / alone on these engines | p99 / ${f(defaultUnloadedP99, 0)} ms (default alone) | time in prompt steps | mean prompt step, ms | low served, req/s | fleet utilisation | lost |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [budget, cost, engine] of variants) {
    const alone = await runSeeds([high], { ...base, engine: { scheduling: 'priority', ...engine } });
    const over = await runSeeds([high, low], { ...base, engine: { scheduling: 'priority', ...engine }, overcommit: { priority: 5, slots: 8 } });
    const lowServed = mean(over.map((r) => r.outcomes.filter((o) => o.priority === 0 && o.fate === 'served').length / (PRIORITY_MS / 1000)));
    console.log(
      `| ${budget} | ${cost} | ${f(ttft(alone, 5, 0.5), 0)} / ${f(ttft(alone, 5, 0.99), 0)} | ${f(ttft(over, 5, 0.5), 0)} / ${f(ttft(over, 5, 0.99), 0)} | ${f(ttft(over, 5, 0.99) / ttft(alone, 5, 0.99), 2)}x | ${f(ttft(over, 5, 0.99) / defaultUnloadedP99, 2)}x | ` +
        `${f(100 * mean(over.map((r) => r.prefillStepShare)))} % | ${f(mean(over.map((r) => r.prefillStepMs)), 0)} | ${f(lowServed, 2)} | ${f(100 * mean(over.map((r) => r.utilisation)))} % | ${over.map(lost).reduce((a, b) => a + b, 0)} |`,
    );
  }
  console.log('');
}

async function burstRun(fair: SimResult[]): Promise<void> {
  // The fleet's capacity as measured: what the saturated fair-share run served per second.
  const capacityPerSecond = Math.round(mean(fair.map((r) => r.outcomes.filter((o) => o.fate === 'served').length / 60)));
  const burst: Stream = { tenant: 'burst', ratePerSecond: 3 * capacityPerSecond, toMs: 5000, ...request };
  const bursts = await runSeeds([burst], { deadlineMs: 30_000, maxQueued: 1024, utilisationUntilMs: 5000 });
  console.log(`## Burst: ${3 * capacityPerSecond} req/s (3x the fleet's ~${capacityPerSecond} req/s) for 5 s, deadline 30 s, maxQueued 1024\n`);
  console.log('| seed | requests | served | refused | timed out (max error vs own deadline, ms) | lost | max queued | max queued tokens | last served at, s |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  bursts.forEach((r, i) => {
    const count = (fate: Outcome['fate']): number => r.outcomes.filter((o) => o.fate === fate).length;
    const timedOut = r.outcomes.filter((o) => o.fate === 'timed-out');
    const maxError = timedOut.length === 0 ? 0 : Math.max(...timedOut.map((o) => Math.abs(o.deadlineErrorMs!)));
    const lastServed = Math.max(...r.outcomes.filter((o) => o.fate === 'served').map((o) => o.arrivedAt + o.ttftMs!));
    console.log(
      `| ${SEEDS[i]} | ${r.outcomes.length} | ${count('served')} | ${count('refused')} | ${count('timed-out')} (${f(maxError, 0)}) | ${count('lost')} | ${r.maxQueued} | ${r.maxQueuedTokens} | ${f(lastServed / 1000)} |`,
    );
  });
}

const fair = runs('fairness') ? await fairness() : [];
if (runs('priority')) await priority();
if (runs('burst')) await burstRun(fair);
