import { describe, expect, it } from 'vitest';
import { DrainRate } from '../../../src/admission/drain-rate.js';
import { flush, setup } from './setup.js';

describe('the drain rate', () => {
  it('falls while work waits and nothing ends (a stall)', () => {
    const rate = new DrainRate(8);
    for (let t = 0; t <= 70; t += 10) rate.record(t);
    expect(rate.perMs(70)).toBeCloseTo(0.1);
    expect(rate.perMs(140)).toBeCloseTo(0.05);
  });

  it('does not count time when the queue had nothing to do: after a minute idle, the rate is the one before it', () => {
    const rate = new DrainRate(8);
    for (let t = 0; t <= 70; t += 10) rate.record(t);
    rate.idle(70);
    expect(rate.perMs(60_070)).toBeCloseTo(0.1);
    rate.busy(60_070);
    expect(rate.perMs(60_070)).toBeCloseTo(0.1);
    // Once busy again, a stall counts as before.
    expect(rate.perMs(60_140)).toBeCloseTo(0.05);
  });
});

describe('a queue after an idle spell', () => {
  it('queues a burst that its usual rate serves within the deadlines, instead of refusing it as unmeetable', async () => {
    const { ask, clock, finish, refusals } = setup(2);
    // Warm: 20 calls through 2 slots, one ending every 10 ms.
    for (let i = 0; i < 20; i++) ask(`warm-${i}`);
    await flush();
    for (let i = 0; i < 20; i++) {
      clock.advance(10);
      await finish();
    }
    // A minute with nothing to do, then a burst of 20 with 5 s deadlines.
    clock.advance(60_000);
    const burst = Array.from({ length: 20 }, (_, i) => ask(`burst-${i}`, { deadline: clock.now() + 5000 }));
    await flush();
    expect(refusals).toEqual([]);
    expect(burst.filter((entry) => entry.error !== undefined)).toEqual([]);
  });
});
