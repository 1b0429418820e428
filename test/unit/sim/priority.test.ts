import { describe, expect, it } from 'vitest';
import { SimEngine, VirtualClock, type SimRequest, type SimUsage } from '../../../src/sim/sim.js';

let nextBlock = 1;
function request(priority: number | undefined, maxTokens = 50): SimRequest {
  return { promptTokens: 64, promptBlocks: Array.from({ length: 4 }, () => nextBlock++), maxTokens, ...(priority === undefined ? {} : { priority }) };
}

/** Reads a generation to its end, noting when its first token came. */
async function consume(engine: SimEngine, req: SimRequest, clock: VirtualClock): Promise<SimUsage & { firstAt: number; tokens: number }> {
  const generation = engine.generate(req);
  let firstAt = NaN;
  let tokens = 0;
  for (;;) {
    const step = await generation.next();
    if (step.done === true) return { ...step.value, firstAt, tokens };
    if (tokens++ === 0) firstAt = clock.now();
  }
}

describe('SimEngine priority scheduling', () => {
  it('preempts the lowest-priority, latest-arrived running sequence for an urgent one, which then finishes all its tokens', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 2, scheduling: 'priority' }, clock);
    const lowEarly = consume(engine, request(0, 200), clock);
    await clock.run(1);
    const lowLate = consume(engine, request(1, 200), clock);
    await clock.run(300);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 0 });
    const arrivedAt = clock.now();
    const urgent = consume(engine, request(5), clock);
    await clock.run();
    const [early, late, high] = [await lowEarly, await lowLate, await urgent];
    // Within one step in progress plus its own prefill step (~9 + 70 ms), not after a slot frees (~1.7 s).
    expect(high.firstAt - arrivedAt).toBeLessThan(120);
    expect(high.preemptions).toBe(0);
    // The victim is the lower priority even though it arrived first.
    expect(early.preemptions).toBe(1);
    expect(late.preemptions).toBe(0);
    expect([early.tokens, late.tokens, high.tokens]).toEqual([200, 200, 50]);
    expect(engine.preemptions).toBe(1);
  });

  it('among equal priorities preempts the latest arrival, and never preempts an equal or higher priority', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 2, scheduling: 'priority' }, clock);
    const first = consume(engine, request(1, 200), clock);
    await clock.run(1);
    const second = consume(engine, request(1, 200), clock);
    await clock.run(300);
    const equal = consume(engine, request(1), clock);
    await clock.run(600);
    expect(engine.preemptions).toBe(0);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 1 });
    const urgent = consume(engine, request(9), clock);
    await clock.run();
    expect((await second).preemptions).toBe(1);
    expect((await first).preemptions).toBe(0);
    expect((await equal).preemptions).toBe(0);
    expect((await urgent).preemptions).toBe(0);
  });

  it('admits waiting requests by priority, then arrival, when a slot frees', async () => {
    const clock = new VirtualClock();
    // A running sequence of the top priority cannot be preempted: the others wait for its slot.
    const engine = new SimEngine({ slots: 1, scheduling: 'priority' }, clock);
    const order: string[] = [];
    const track = (name: string, req: SimRequest): Promise<unknown> =>
      consume(engine, req, clock).then((usage) => order.push(`${name}@${Math.round(usage.firstAt)}`));
    const all = [track('top', request(9, 30))];
    await clock.run(1);
    all.push(track('low-a', request(0, 5)), track('normal', request(1, 5)), track('low-b', request(0, 5)), track('high', request(5, 5)));
    await clock.run();
    await Promise.all(all);
    expect(order.map((entry) => entry.split('@')[0])).toEqual(['top', 'high', 'normal', 'low-a', 'low-b']);
  });

  it('ignores priorities under fcfs (the default): an urgent request waits for a slot like any other', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 1 }, clock);
    expect(engine.config.scheduling).toBe('fcfs');
    const low = consume(engine, request(0, 100), clock);
    await clock.run(100);
    const arrivedAt = clock.now();
    const urgent = consume(engine, request(9), clock);
    await clock.run();
    expect((await low).preemptions).toBe(0);
    expect((await urgent).firstAt - arrivedAt).toBeGreaterThan(500);
  });

  it('preempts for KV room too, and not while even every lower priority would not free enough', async () => {
    const clock = new VirtualClock();
    const engine = new SimEngine({ slots: 8, kvCapacityTokens: 1600, scheduling: 'priority' }, clock);
    // A request of `blocks` KV blocks (prompt plus output, 16 tokens a block) out of 100.
    const sized = (priority: number, blocks: number, maxTokens: number): SimRequest => ({
      promptTokens: 16 * blocks - maxTokens,
      promptBlocks: [],
      maxTokens,
      priority,
    });
    const lows = [consume(engine, sized(0, 40, 200), clock), consume(engine, sized(0, 40, 200), clock)];
    await clock.run(100);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 0 });
    // 20 blocks free; 41 needed: one low goes.
    const urgent = consume(engine, sized(5, 41, 16), clock);
    await clock.run(140);
    expect(engine.preemptions).toBe(1);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 1 });
    // 90 blocks cannot fit beside the urgent one's 41 even with the other low out: nobody is
    // preempted while the urgent one runs; once it has finished, the low one makes room.
    const huge = consume(engine, sized(5, 90, 16), clock);
    await clock.run(160);
    expect(engine.preemptions).toBe(1);
    expect(engine.load()).toMatchObject({ running: 2, waiting: 2 });
    await clock.run();
    const usages = await Promise.all([...lows, urgent, huge]);
    expect(usages.map((usage) => usage.tokens)).toEqual([200, 200, 16, 16]);
    expect(engine.preemptions).toBe(2);
  });

  it('rejects a bad scheduling policy and a non-numeric priority, naming them', async () => {
    expect(() => new SimEngine({ scheduling: 'lifo' as never }, new VirtualClock())).toThrow(
      /invalid engine scheduling: "lifo" \(allowed: 'fcfs' or 'priority'\)/,
    );
    const engine = new SimEngine({ scheduling: 'priority' }, new VirtualClock());
    await expect(engine.generate({ ...request(undefined), priority: Number.NaN }).next()).rejects.toThrow(/invalid request priority: NaN/);
  });
});
