import { describe, expect, it } from 'vitest';
import type { LoadBalancer } from '../../../src/loadbalance/loadbalance.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view, type TestView } from '../../helpers/lb.js';

const create = (options: Record<string, unknown> = {}): LoadBalancer =>
  defaultExtensions().loadbalance.create({ type: 'slo', options: { clock: { now: () => 0 }, ...options } });
/** A simulated-GPU-like worker: its slots, prefill speed and decode timings in its metadata. */
const worker = (port: number, slots: number, prefillTokensPerSecond = 20_000): TestView =>
  view(port, {
    maxConcurrentCalls: slots * 4,
    metadata: { slots, prefillTokensPerSecond, decodeBaseMs: 6, decodePerSequenceMs: 0.35, prefillOverheadMs: 30, kvCapacityTokens: slots * 25_000 },
  });
const system = 'You are a careful assistant who answers with citations. '.repeat(40);

/** Routes `count` calls, each staying in flight, and returns how many each worker took. */
function route(balancer: LoadBalancer, workers: TestView[], count: number, prompt: (i: number) => string): number[] {
  const counts = workers.map(() => 0);
  for (let i = 0; i < count; i++) {
    const key = prompt(i);
    const decision = balancer.select(workers, invocation(key));
    const chosen = decision.provider as TestView;
    // As the client counts them: the tokens the balancer expects the worker to prefill.
    chosen.stats.start(decision.uncachedTokens ?? Math.ceil(key.length / 4));
    counts[workers.indexOf(chosen)]!++;
  }
  return counts;
}

describe('slo balancer', () => {
  it('is a built-in that predicts TTFT and says which branch it took', () => {
    const balancer = create();
    const workers = [worker(1, 8), worker(2, 8)];
    const first = balancer.select(workers, invocation(`${system} one`));
    expect(first).toMatchObject({ policy: 'slo', branch: 'cold' });
    expect(Number(first.detail?.['predictedTtftMs'])).toBeGreaterThan(30);
    const second = balancer.select(workers, invocation(`${system} two`));
    expect(second).toMatchObject({ provider: first.provider, branch: 'hit' });
    expect(Number(second.detail?.['cachedTokens'])).toBeGreaterThan(500);
    expect(Number(second.detail?.['predictedTtftMs'])).toBeLessThan(Number(first.detail?.['predictedTtftMs']));
    expect(balancer.select(workers, invocation()).branch).toBe('fallback');
  });

  it('fills a mixed fleet in proportion to its slots (capacity-weighted by construction)', () => {
    const workers = [worker(1, 32, 40_000), worker(2, 16), worker(3, 4, 5_000)];
    const counts = route(create(), workers, 104, (i) => `unique prompt ${i} `.repeat(60));
    // 52 slots: every worker fills its slots before anything queues; then the queue goes where it
    // drains soonest (a 4-slot worker frees a slot about 3.5 x less often than a 32-slot one).
    expect(counts[0]).toBeGreaterThanOrEqual(55);
    expect(counts[1]).toBeGreaterThanOrEqual(30);
    expect(counts[2]).toBeGreaterThanOrEqual(4);
    expect(counts[2]).toBeLessThanOrEqual(12);
  });

  it('keeps a shared prefix on its worker until that worker’s queue costs more than prefilling elsewhere', () => {
    const balancer = create();
    const workers = [worker(1, 4), worker(2, 4)];
    // One call warms a worker's cache with the system prompt and finishes.
    const warm = balancer.select(workers, invocation(`${system} warm-up`)).provider as TestView;
    warm.stats.start(0);
    warm.stats.end(0, 500, 0, true);
    const other = workers.find((entry) => entry !== warm)!;
    const counts = route(balancer, [warm, other], 5, (i) => `${system} question ${i}`);
    // Four fit in the warm worker's slots; the fifth would queue behind a whole decode there,
    // which costs more than prefilling the prompt on the idle one.
    expect(counts).toEqual([4, 1]);
  });

  it('corrects a worker whose calls come back slower than predicted', () => {
    const balancer = create();
    const slow = worker(1, 8);
    const fast = worker(2, 8);
    const workers = [slow, fast];
    // Alternate by hand so both are tried, and report the slow one 4x its prediction.
    for (let i = 0; i < 60; i++) {
      const call = invocation(`unique ${i} `.repeat(40));
      const decision = balancer.select([i % 2 === 0 ? slow : fast], call);
      const predicted = Number(decision.detail?.['predictedTtftMs']);
      const factor = decision.provider === slow ? 4 : 1;
      balancer.observe?.({ invocation: call, address: decision.provider.address, firstAnswerMs: predicted * factor, totalMs: predicted * factor + 500 });
    }
    const slowPrediction = Number(balancer.select([slow], invocation('probe a '.repeat(40))).detail?.['predictedTtftMs']);
    const fastPrediction = Number(balancer.select([fast], invocation('probe b '.repeat(40))).detail?.['predictedTtftMs']);
    expect(slowPrediction).toBeGreaterThan(2 * fastPrediction);
    const picks = route(balancer, workers, 6, (i) => `fresh ${i} `.repeat(40));
    expect(picks[1]).toBeGreaterThan(picks[0]!);
  });

  it('learns from failed answers: a worker that fails every call at once stops drawing calls, and is tried again once it may have recovered', () => {
    let now = 0;
    const balancer = create({ clock: { now: () => now } });
    const workers = [worker(1, 8), worker(2, 8), worker(3, 8), worker(4, 8)];
    const failing = workers[0]!;
    let toFailing = 0;
    // Plain calls (no prompt), as a non-LLM method makes: healthy workers answer in 40 ms, 4x
    // what their records predict; the failing one answers every call in 1 ms with an error.
    const call = (i: number, fails: boolean): void => {
      const made = invocation();
      const decision = balancer.select(workers, made);
      const bad = fails && decision.provider === failing;
      if (decision.provider === failing && i >= 100) toFailing++;
      balancer.observe?.({ invocation: made, address: decision.provider.address, firstAnswerMs: bad ? 1 : 40, totalMs: bad ? 1 : 40, failed: bad });
      now += 5;
    };
    for (let i = 0; i < 300; i++) call(i, true);
    // Without learning from failures it kept the correction it started with, below its
    // healthy peers', and drew three quarters of these calls.
    expect(toFailing).toBeLessThan(10);
    // What it learned fades toward the fleet's typical correction while it is not chosen, so a
    // worker that healed is not priced out for good: a minute on, its prediction is within 15 %
    // of a healthy worker's (under load, the queues then send it calls again).
    const predicted = (one: TestView): number => Number(balancer.select([one], invocation()).detail?.['predictedTtftMs']);
    const healthy = predicted(workers[1]!);
    expect(predicted(failing)).toBeGreaterThan(healthy);
    now += 60_000;
    expect(predicted(failing)).toBeLessThan(1.15 * predicted(workers[1]!));
  });

  it('learns a worker 20x slower than its record says as that much slower, not only up to a cap', () => {
    const balancer = create();
    const slow = worker(1, 8);
    const fast = worker(2, 8);
    const predicted = (from: LoadBalancer, one: TestView, key: string) => Number(from.select([one], invocation(key)).detail?.['predictedTtftMs']);
    // Every call there answers 20x later than its record predicts (what a balancer that learned nothing predicts).
    for (let i = 0; i < 200; i++) {
      const key = `unique ${i} `.repeat(40);
      const call = invocation(key);
      balancer.select([slow], call);
      const recordSays = predicted(create(), slow, key);
      balancer.observe?.({ invocation: call, address: slow.address, firstAnswerMs: 20 * recordSays, totalMs: 20 * recordSays + 500 });
    }
    expect(predicted(balancer, slow, 'probe a '.repeat(40))).toBeGreaterThan(12 * predicted(balancer, fast, 'probe b '.repeat(40)));
  });

  it('predicts a number for a worker advertising figures at the edge of the number range, and learns it from outcomes', () => {
    const balancer = create();
    // Valid JSON, absurd values: 1e308 slots, prefill rate and KV; really it answers in 5 s.
    const absurd = view(1, {
      maxConcurrentCalls: 32,
      metadata: { slots: 1e308, prefillTokensPerSecond: 1e308, kvCapacityTokens: 1e308, decodeBaseMs: 6, decodePerSequenceMs: 0.35, prefillOverheadMs: 30 },
    });
    const honest = worker(2, 8);
    const first = balancer.select([absurd, honest], invocation('first question '.repeat(40)));
    expect(Number.isFinite(Number(first.detail?.['predictedTtftMs']))).toBe(true);
    for (let i = 0; i < 100; i++) {
      const call = invocation(`question ${i} `.repeat(40));
      balancer.select([absurd], call);
      balancer.observe?.({ invocation: call, address: absurd.address, firstAnswerMs: 5000, totalMs: 6000 });
    }
    expect(balancer.select([absurd, honest], invocation('fresh question '.repeat(40))).provider).toBe(honest);
  });

  it('lets one outlier move a learned correction by a few percent at most', () => {
    const balancer = create();
    const one = worker(1, 8);
    const before = Number(balancer.select([one], invocation('probe '.repeat(40))).detail?.['predictedTtftMs']);
    const call = invocation('outlier '.repeat(40));
    balancer.select([one], call);
    balancer.observe?.({ invocation: call, address: one.address, firstAnswerMs: 10_000_000, totalMs: 10_000_500 });
    const after = Number(balancer.select([one], invocation('probe '.repeat(40))).detail?.['predictedTtftMs']);
    expect(after / before).toBeLessThan(1.08);
  });

  it('ignores outcomes of calls it did not route', () => {
    const balancer = create();
    const one = worker(1, 8);
    const before = Number(balancer.select([one], invocation('a '.repeat(100))).detail?.['predictedTtftMs']);
    for (let i = 0; i < 50; i++) balancer.observe?.({ invocation: invocation('other'), address: one.address, firstAnswerMs: 100_000, totalMs: 100_001 });
    expect(Number(balancer.select([one], invocation('b '.repeat(100))).detail?.['predictedTtftMs'])).toBe(before);
  });

  it('avoids a worker whose predicted inter-token gap breaks the SLO', () => {
    // Both idle with no cache; the first decodes slowly (a 60 ms step), the second within the SLO.
    const slowDecode = view(1, { metadata: { slots: 8, decodeBaseMs: 60, prefillTokensPerSecond: 100_000 } });
    const ok = view(2, { metadata: { slots: 8, decodeBaseMs: 10, prefillTokensPerSecond: 20_000 } });
    expect(create({ itlSloMs: 50 }).select([slowDecode, ok], invocation('words '.repeat(200))).provider).toBe(ok);
  });

  it('refuses unknown options and bad SLOs by name', () => {
    expect(() => create({ spillMargin: 1 })).toThrow(/unknown option slo loadbalance options.spillMargin/);
    expect(() => create({ ttftSloMs: 0 })).toThrow(/slo loadbalance ttftSloMs/);
  });
});
