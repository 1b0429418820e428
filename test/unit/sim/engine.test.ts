import { describe, expect, it } from 'vitest';
import { RpcCode } from '../../../src/errors/errors.js';
import { SimEngine, VirtualClock, type SimRequest, type SimUsage } from '../../../src/sim/sim.js';

/** Prompt of `tokens` tokens whose first `shared` blocks are the given prefix id's. */
function prompt(tokens: number, prefix: number, shared = Math.floor(tokens / 16)): SimRequest & { maxTokens: number } {
  const blocks = Math.floor(tokens / 16);
  return {
    promptTokens: tokens,
    promptBlocks: Array.from({ length: blocks }, (_, i) => (i < shared ? prefix * 100_000 + i : Math.floor(Math.random() * 1e9))),
    maxTokens: 20,
  };
}

async function consume(engine: SimEngine, request: SimRequest, onToken?: (index: number, at: number) => void, clock?: VirtualClock): Promise<SimUsage> {
  const generator = engine.generate(request);
  for (;;) {
    const step = await generator.next();
    if (step.done === true) return step.value;
    onToken?.(step.value, clock?.now() ?? 0);
  }
}

describe('SimEngine (virtual clock)', () => {
  it('calibration: a short prompt on an idle worker gets its first token after 6-10 decode steps', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({}, clock);
    const done = consume(engine, prompt(100, 1));
    await clock.run();
    const usage = await done;
    const idleStep = 6 + 0.35;
    expect(usage.ttftMs / idleStep).toBeGreaterThanOrEqual(6);
    expect(usage.ttftMs / idleStep).toBeLessThanOrEqual(10);
    expect(usage.outputTokens).toBe(20);
  });

  it('serves a shared prefix from the cache: fewer prefill tokens, a shorter TTFT', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({}, clock);
    const first = consume(engine, prompt(6000, 7));
    await clock.run();
    const second = consume(engine, prompt(6000, 7, 300));
    await clock.run();
    const [cold, warm] = [await first, await second];
    expect(cold.cachedTokens).toBe(0);
    expect(warm.cachedTokens).toBe(300 * 16);
    expect(warm.ttftMs).toBeLessThan(cold.ttftMs - 150);
    expect(engine.load().cacheHitRate).toBeCloseTo(4800 / 12_000);
  });

  it('queues beyond its slots in arrival order, and decode steps slow down as the batch grows', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 8 }, clock);
    const tokenTimes: number[][] = Array.from({ length: 12 }, () => []);
    const all = Array.from({ length: 12 }, (_, i) => consume(engine, { ...prompt(64, i), maxTokens: 50 }, (_index, at) => tokenTimes[i]!.push(at), clock));
    await clock.run(80);
    expect(engine.load()).toMatchObject({ running: 8, waiting: 4 });
    await clock.run();
    const usages = await Promise.all(all);
    // The last four started only after the first eight finished.
    expect(Math.min(...usages.slice(8).map((usage) => usage.ttftMs))).toBeGreaterThan(Math.max(...usages.slice(0, 8).map((usage) => usage.ttftMs)));
    // Inter-token latency with 8 running: 6 + 0.35 x 8 = 8.8 ms.
    const gaps = tokenTimes[0]!.slice(1).map((at, i) => at - tokenTimes[0]![i]!);
    expect(gaps[5]).toBeCloseTo(8.8, 5);
  });

  it('frees a cancelled request’s slot at the next step', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 1 }, clock);
    const controller = new AbortController();
    const long = consume(engine, { ...prompt(64, 1), maxTokens: 10_000, signal: controller.signal });
    const next = consume(engine, prompt(64, 2));
    await clock.run(200);
    expect(engine.load()).toMatchObject({ running: 1, waiting: 1 });
    controller.abort();
    await clock.run();
    expect((await long).outputTokens).toBeLessThan(100);
    expect((await next).outputTokens).toBe(20);
  });

  it('holds back a request whose KV blocks do not fit until others finish', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 8, kvCapacityTokens: 16 * 100 }, clock);
    const big = Array.from({ length: 3 }, (_, i) => consume(engine, { ...prompt(16 * 40, i), maxTokens: 16 }));
    // Requests that arrive during a step wait for the next one; by 100 ms two are running and
    // the third waits for blocks (41 + 41 of 100 taken, it needs 41).
    await clock.run(100);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 1 });
    expect(engine.load().kvUsage).toBeCloseTo(82 / 100);
    await clock.run();
    expect((await Promise.all(big)).every((usage) => usage.outputTokens === 16)).toBe(true);
  });

  it('rejects a request larger than the whole KV cache as the caller’s mistake (INVALID_ARGUMENT, as an engine answers 400)', async () => {
    const engine = new SimEngine({ kvCapacityTokens: 1000 }, new VirtualClock());
    const refused = consume(engine, { ...prompt(2000, 1), maxTokens: 10 });
    await expect(refused).rejects.toThrow('the prompt (2000 tokens) and maxTokens (10) need 2010 tokens; this engine holds at most 1000 (its KV capacity)');
    await expect(refused).rejects.toMatchObject({ code: RpcCode.INVALID_ARGUMENT });
  });
});
