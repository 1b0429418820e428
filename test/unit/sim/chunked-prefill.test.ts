import { describe, expect, it } from 'vitest';
import { SimEngine, VirtualClock, type EngineConfig, type EngineStep, type SimRequest } from '../../../src/sim/sim.js';

let nextBlock = 1;
/** A request of `promptTokens` unique (uncached) prompt tokens. */
function request(promptTokens: number, maxTokens: number, priority?: number): SimRequest {
  return {
    promptTokens,
    promptBlocks: Array.from({ length: Math.floor(promptTokens / 16) }, () => nextBlock++),
    maxTokens,
    ...(priority === undefined ? {} : { priority }),
  };
}

/** Reads a generation to its end; resolves with when its first token came and how many came. */
async function consume(engine: SimEngine, req: SimRequest, clock: VirtualClock): Promise<{ firstAt: number; tokens: number }> {
  const generation = engine.generate(req);
  let firstAt = NaN;
  let tokens = 0;
  for (;;) {
    const step = await generation.next();
    if (step.done === true) return { firstAt, tokens };
    if (tokens++ === 0) firstAt = clock.now();
  }
}

function engineWithSteps(config: Partial<EngineConfig>): { clock: VirtualClock; engine: SimEngine; steps: EngineStep[] } {
  const clock = new VirtualClock();
  const engine = new SimEngine(config, clock);
  const steps: EngineStep[] = [];
  engine.onStep((step) => steps.push(step));
  return { clock, engine, steps };
}

/** The step time the engine's contract gives for these tokens (defaults: 20k tokens/s, 30 ms overhead, 6 + 0.35 per sequence). */
const expectedMs = (prefillTokens: number, sequences: number): number => (prefillTokens > 0 ? 30 + prefillTokens / 20 : 0) + 6 + 0.35 * sequences;

describe('SimEngine chunked prefill', () => {
  it('defaults to vLLM’s 2048-token step budget and rejects a budget below one token', () => {
    expect(new SimEngine({}, new VirtualClock()).config.maxBatchedTokens).toBe(2048);
    expect(() => new SimEngine({ maxBatchedTokens: 0 }, new VirtualClock())).toThrow(
      /invalid engine maxBatchedTokens: 0 \(allowed: an integer >= 1 or Infinity\)/,
    );
    expect(() => new SimEngine({ maxBatchedTokens: 100.5 }, new VirtualClock())).toThrow(/maxBatchedTokens/);
    expect(new SimEngine({ maxBatchedTokens: Infinity }, new VirtualClock()).config.maxBatchedTokens).toBe(Infinity);
  });

  it('chunks a long prompt across steps; its first token comes at the end of the last chunk’s step', async () => {
    const { clock, engine, steps } = engineWithSteps({ maxBatchedTokens: 2048 });
    const usage = await Promise.all([consume(engine, request(5000, 3), clock), clock.run()]).then(([u]) => u);
    expect(steps.map((step) => step.prefillTokens)).toEqual([2048, 2048, 904, 0, 0]);
    expect(steps.map((step) => step.decodeTokens)).toEqual([0, 0, 0, 1, 1]);
    // Each step lasts what it computed.
    for (const step of steps) expect(step.ms).toBeCloseTo(expectedMs(step.prefillTokens, step.sequences), 9);
    expect(usage.firstAt).toBeCloseTo(steps[2]!.startedAt + steps[2]!.ms, 9);
    expect(usage.tokens).toBe(3);
  });

  it('computes the whole prompt in one step with no budget (Infinity)', async () => {
    const { clock, engine, steps } = engineWithSteps({ maxBatchedTokens: Infinity });
    const usage = await Promise.all([consume(engine, request(5000, 1), clock), clock.run()]).then(([u]) => u);
    expect(steps.map((step) => step.prefillTokens)).toEqual([5000]);
    expect(usage.firstAt).toBeCloseTo(expectedMs(5000, 1), 9);
  });

  it('never computes more tokens in a step than the budget, and computes every prompt token once', async () => {
    const { clock, engine, steps } = engineWithSteps({ slots: 6, maxBatchedTokens: 512 });
    const sizes = [300, 1200, 64, 2000, 700, 512, 96, 1500];
    const all: Array<Promise<{ tokens: number }>> = [];
    // Arrivals spread over the first steps, so chunks, new prompts and decodes share steps.
    for (const [i, size] of sizes.entries()) {
      all.push(consume(engine, request(size, 20), clock));
      await clock.run(15 * (i + 1));
    }
    await clock.run();
    const usages = await Promise.all(all);
    expect(usages.every((usage) => usage.tokens === 20)).toBe(true);
    for (const step of steps) expect(step.prefillTokens + step.decodeTokens).toBeLessThanOrEqual(512);
    expect(steps.some((step) => step.prefillTokens > 0 && step.decodeTokens > 0)).toBe(true);
    expect(steps.some((step) => step.prefillTokens + step.decodeTokens === 512)).toBe(true);
    expect(steps.reduce((sum, step) => sum + step.prefillTokens, 0)).toBe(sizes.reduce((a, b) => a + b, 0));
  });

  it('under priority, a high-priority arrival is prefilled in the next step, ahead of a low prompt’s chunks', async () => {
    const { clock, engine, steps } = engineWithSteps({ slots: 4, maxBatchedTokens: 512, scheduling: 'priority' });
    const low = consume(engine, request(4000, 5, 0), clock);
    await clock.run(10);
    expect(steps).toHaveLength(1);
    const high = consume(engine, request(256, 5, 5), clock);
    await clock.run();
    const [lowUsage, highUsage] = [await low, await high];
    // The step after the one in progress computes the high prompt whole and a 256-token low chunk.
    expect(steps[1]!.prefillTokens).toBe(512);
    expect(highUsage.firstAt).toBeCloseTo(steps[1]!.startedAt + steps[1]!.ms, 9);
    expect(highUsage.firstAt).toBeLessThan(steps[0]!.ms + expectedMs(512, 2) + 1e-9);
    // The low prompt still gets all its tokens, one step later than alone.
    expect(lowUsage.tokens).toBe(5);
    expect(steps.reduce((sum, step) => sum + step.prefillTokens, 0)).toBe(4256);
  });

  it('under fcfs, the same arrival waits until the low prompt’s chunks have used the budget', async () => {
    const { clock, engine, steps } = engineWithSteps({ slots: 4, maxBatchedTokens: 512 });
    const low = consume(engine, request(4000, 5, 0), clock);
    await clock.run(10);
    const high = consume(engine, request(256, 5, 5), clock);
    await clock.run();
    const [lowUsage, highUsage] = [await low, await high];
    // 4000 tokens = 7 full chunks and 416 more; the high prompt shares the eighth step.
    expect(steps.slice(0, 8).map((step) => step.prefillTokens)).toEqual([512, 512, 512, 512, 512, 512, 512, 512]);
    expect(highUsage.firstAt).toBeGreaterThan(steps[7]!.startedAt);
    expect(lowUsage.firstAt).toBeCloseTo(steps[7]!.startedAt + steps[7]!.ms, 9);
  });

  it('spends requestOverheadMs before the request joins the engine’s queue, outside its steps', async () => {
    const { clock, engine, steps } = engineWithSteps({ requestOverheadMs: 25, prefillOverheadMs: 0 });
    const first = consume(engine, request(512, 2), clock);
    const usage = await Promise.all([first, clock.run()]).then(([u]) => u);
    expect(steps[0]!.startedAt).toBe(25);
    expect(usage.firstAt).toBeCloseTo(25 + 512 / 20 + 6 + 0.35, 9);
  });
});
