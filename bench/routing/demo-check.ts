import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_ENGINE } from '../../src/sim/sim.js';
import { sized, type WorkerSpec } from './fleet.js';
import { simulate } from './simulate.js';
import { median, percentile } from './summary.js';
import type { WorkItem } from './workloads.js';

/*
 * The virtual clock's prediction checked against the real thing: the demo (`npm run demo`:
 * three worker processes of 16, 8 and 4 slots behind the real client, over the real registry
 * and tcp transport) replayed in the simulator — the same fleet, the same prompts, the same
 * closed loop of 12 users at a time — and then run for real.
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

/** Runs the check for `policy`; returns the report lines. */
export async function demoCheck(policy: string, seeds: number): Promise<string[]> {
  const runs = [];
  for (let seed = 1; seed <= seeds; seed++) runs.push(await simulate(policy, demoItems(), { fleet: DEMO_FLEET, concurrency: 12, loadIntervalMs: 250, seed }));
  const predictedP99 = median(runs.map((run) => percentile(run.ttft, 0.99)));
  const predictedP50 = median(runs.map((run) => percentile(run.ttft, 0.5)));
  const predictedHit = median(runs.map((run) => run.cachedTokens / Math.max(1, run.promptTokens)));
  const demo = fileURLToPath(new URL('../../examples/demo.js', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [demo, '--loadbalance', policy], { timeout: 180_000, maxBuffer: 1 << 20 });
  const figures = /TTFT p50 (\d+) ms, p99 (\d+) ms;.*cache hits (\d+) %/.exec(stdout);
  if (figures === null) return [`Demo check (${policy}): could not read the demo's figures from its output.`];
  const [real50, real99, realHit] = [Number(figures[1]), Number(figures[2]), Number(figures[3]) / 100];
  const apart = (real: number, predicted: number): number => Math.abs(real - predicted) / Math.max(predicted, 1e-9);
  const verdict = (share: number): string => `${(share * 100).toFixed(0)} % apart, ${share <= 0.15 ? 'within' : '**NOT within**'} 15 %`;
  return [
    `Demo fleet through the real client and real worker processes (\`npm run demo -- --loadbalance ${policy}\`) against its virtual-clock replay (${seeds} seeds): ` +
      `TTFT p50 ${real50} ms real, ${predictedP50.toFixed(0)} ms predicted; TTFT p99 ${real99} ms real, ${predictedP99.toFixed(0)} ms predicted (${verdict(apart(real99, predictedP99))}); ` +
      `cache hits ${(realHit * 100).toFixed(0)} % real, ${(predictedHit * 100).toFixed(1)} % predicted (${verdict(apart(realHit, predictedHit))}).`,
  ];
}
