import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_ENGINE } from '../../src/sim/sim.js';
import { LOAD_PUSH_EVERY_MS } from '../../src/transport/transport.js';
import { sized, type WorkerSpec } from './fleet.js';
import { simulate } from './simulate.js';
import { median, percentile } from './summary.js';
import type { WorkItem } from './workloads.js';

/*
 * The virtual clock's prediction checked against the real thing: the demo (`npm run demo`:
 * three worker processes of 16, 8 and 4 slots behind the real client, over the real file
 * registry and tcp transport) run for real, then replayed in the simulator as it ran — the
 * same fleet, prompts and closed loop of 12 users at a time, the workers' real addresses (the
 * `slo` balancer's rendezvous hashing depends on them), their load reported every 250 ms and
 * read by the consumer every 500 ms (the file registry's poll, which stamps a report when it
 * reads it), and a load report after every answer and every 50 ms while calls run (the tcp
 * transport's LOAD frames, without the cache summary).
 */

/**
 * The demo's workers: slots and KV capacity as examples/demo.ts starts them, the engine's
 * default prefill speed and step token budget (its cold prompts, ~2,100 tokens, take two steps).
 */
const DEMO_FLEET: WorkerSpec[] = [
  { ...sized(16), prefillTokensPerSecond: 20_000, kvCapacityTokens: 400_000, maxBatchedTokens: DEFAULT_ENGINE.maxBatchedTokens },
  { ...sized(8), prefillTokensPerSecond: 20_000, kvCapacityTokens: 120_000, maxBatchedTokens: DEFAULT_ENGINE.maxBatchedTokens },
  { ...sized(4), prefillTokensPerSecond: 20_000, kvCapacityTokens: 60_000, maxBatchedTokens: DEFAULT_ENGINE.maxBatchedTokens },
];
const WORDS = ['the', ' model', ' routes', ' tokens', ' across', ' many', ' workers', ',', ' fast', '.'];

/** examples/inference/consumer.ts's requests with its defaults: 36 users x 4 turns, 48 tokens each. */
function demoItems(users = 36, turns = 4, maxTokens = 48): WorkItem[] {
  const systems = Array.from({ length: 4 }, (_, i) => `System prompt ${i}: you are assistant #${i}. `.padEnd(8000, `Follow policy ${i} carefully. `));
  // The simulated worker answers token k with WORDS[k % 10], so every answer is the same text.
  const answer = Array.from({ length: maxTokens }, (_, k) => WORDS[k % WORDS.length]).join('');
  const items: WorkItem[] = [];
  for (let id = 0; id < users; id++) {
    let history = `${systems[id % systems.length]!}\n`;
    for (let turn = 0; turn < turns; turn++) {
      history += `User ${id}, turn ${turn}: ${'please explain routing and caching '.repeat(8)}\n`;
      items.push({ at: 0, prompt: history, maxTokens, session: id });
      history += `Assistant: ${answer}\n`;
    }
  }
  return items;
}

/** The demo's fleet in DEMO_FLEET's order, by the names it prints. */
const DEMO_NAMES = ['h100-a', 'a10-b', 'l4-c'];

/** One real run of the demo: its figures and its workers' addresses (DEMO_FLEET's order). */
interface DemoRun extends Figures {
  readonly addresses: string[];
}

async function runDemo(policy: string): Promise<DemoRun | string> {
  const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [demo, '--loadbalance', policy], { timeout: 180_000, maxBuffer: 1 << 20 });
  const figures = /TTFT p50 (\d+) ms, p99 (\d+) ms \(after the first round (\d+) ms\);.*cache hits (\d+) %/.exec(stdout);
  const addresses = DEMO_NAMES.map((name) => new RegExp(`worker ${name} .* at shuttle://([\\d.]+:\\d+)`).exec(stdout)?.[1]);
  if (figures === null || addresses.some((address) => address === undefined)) return `could not read the demo's figures or workers from its output`;
  return {
    p50: Number(figures[1]),
    p99: Number(figures[2]),
    p99AfterStart: Number(figures[3]),
    hit: Number(figures[4]) / 100,
    addresses: addresses as string[],
  };
}

/** A run's figures: TTFT p50, p99, p99 after the first round (ms), cache-hit rate. */
interface Figures {
  readonly p50: number;
  readonly p99: number;
  readonly p99AfterStart: number;
  readonly hit: number;
}

/** The replay of one real run. */
async function replay(policy: string, addresses: readonly string[]): Promise<Figures> {
  const concurrency = 12;
  const run = await simulate(policy, demoItems(), {
    fleet: DEMO_FLEET,
    concurrency,
    loadIntervalMs: 250,
    registryPollMs: 500,
    piggyback: true,
    pushLoadMs: LOAD_PUSH_EVERY_MS,
    addresses,
  });
  const byStart = run.ttft.map((ttft, i) => ({ ttft, at: run.startedAt[i]! })).sort((a, b) => a.at - b.at);
  return {
    p50: percentile(run.ttft, 0.5),
    p99: percentile(run.ttft, 0.99),
    p99AfterStart: percentile(
      byStart.slice(concurrency).map((entry) => entry.ttft),
      0.99,
    ),
    hit: run.cachedTokens / Math.max(1, run.promptTokens),
  };
}

/** Runs the demo `runs` times with `policy`, replays each run, and returns the report lines. */
export async function demoCheck(policy: string, runs: number): Promise<string[]> {
  const pairs: Array<{ real: DemoRun; predicted: Figures }> = [];
  for (let n = 0; n < runs; n++) {
    const real = await runDemo(policy);
    if (typeof real === 'string') return [`Demo check (${policy}): ${real}.`];
    pairs.push({ real, predicted: await replay(policy, real.addresses) });
  }
  const apart = (real: number, predicted: number): number => Math.abs(real - predicted) / Math.max(predicted, 1e-9);
  const verdict = (share: number): string => `${(share * 100).toFixed(0)} % apart, ${share <= 0.15 ? 'within' : '**NOT within**'} 15 %`;
  const mid = (pick: (pair: (typeof pairs)[number]) => number): number => median(pairs.map(pick));
  const each = pairs.map(({ real, predicted }) => `${real.p99}/${predicted.p99.toFixed(0)}`).join(', ');
  const [p99, p99Pred] = [mid((pair) => pair.real.p99), mid((pair) => pair.predicted.p99)];
  const [warm, warmPred] = [mid((pair) => pair.real.p99AfterStart), mid((pair) => pair.predicted.p99AfterStart)];
  const [hit, hitPred] = [mid((pair) => pair.real.hit), mid((pair) => pair.predicted.hit)];
  return [
    `Demo fleet through the real client and real worker processes (\`npm run demo -- --loadbalance ${policy}\`, ${runs} runs, each replayed on the virtual clock with its workers' addresses; medians): ` +
      `TTFT p50 ${mid((pair) => pair.real.p50)} ms real, ${mid((pair) => pair.predicted.p50).toFixed(0)} ms predicted; ` +
      `TTFT p99 ${p99} ms real, ${p99Pred.toFixed(0)} ms predicted (${verdict(apart(p99, p99Pred))}; per run real/predicted ${each}); ` +
      `TTFT p99 after the first round ${warm} ms real, ${warmPred.toFixed(0)} ms predicted (${verdict(apart(warm, warmPred))}); ` +
      `cache hits ${(hit * 100).toFixed(0)} % real, ${(hitPred * 100).toFixed(1)} % predicted (${verdict(apart(hit, hitPred))}).`,
  ];
}
