import { afterEach, describe, expect, it, vi } from 'vitest';
import { fromWallTime, monotonicNow, toWallTime } from '../../../src/common/clock.js';
import { DeadlineHeap } from '../../../src/common/deadline-heap.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

afterEach(() => vi.restoreAllMocks());

describe('monotonicNow', () => {
  it('reads like Date.now() until the wall clock steps, then keeps counting real time', async () => {
    expect(Math.abs(monotonicNow() - Date.now())).toBeLessThan(1000);
    const before = monotonicNow();
    stepWallClock(-HOUR_MS);
    await sleep(30);
    const elapsed = monotonicNow() - before;
    expect(elapsed).toBeGreaterThanOrEqual(25);
    expect(elapsed).toBeLessThan(1000);
    expect(Number.isInteger(monotonicNow())).toBe(true);
  });

  it('converts to and from wall time at the edge, keeping the distance from now', () => {
    stepWallClock(HOUR_MS);
    const now = monotonicNow();
    // Date.now() is read inside and out here: a millisecond may tick between the two reads.
    expect(Math.abs(toWallTime(now + 5000, now) - Date.now() - 5000)).toBeLessThanOrEqual(1);
    expect(Math.abs(fromWallTime(Date.now() + 5000, now) - now - 5000)).toBeLessThanOrEqual(1);
  });
});

describe('DeadlineHeap across a wall-clock step', () => {
  function setup() {
    const pending = new Map<number, number>();
    const expired: number[] = [];
    const heap = new DeadlineHeap({
      deadlineOf: (id) => pending.get(id),
      live: () => pending.entries(),
      liveCount: () => pending.size,
      expire: (id) => {
        pending.delete(id);
        expired.push(id);
      },
    });
    const add = (id: number, deadline: number): void => {
      pending.set(id, deadline);
      heap.add(id, deadline);
    };
    return { expired, heap, add };
  }

  it('forward by an hour: a call with 5 s left is not expired when the timer runs for another', async () => {
    const { expired, heap, add } = setup();
    add(1, monotonicNow() + 5000);
    stepWallClock(HOUR_MS);
    add(2, monotonicNow() + 30);
    await sleep(80);
    expect(expired).toEqual([2]);
    heap.clear();
  });

  it('back by an hour: a deadline 30 ms away still fires within its time', async () => {
    const { expired, heap, add } = setup();
    add(1, monotonicNow() + 5000);
    stepWallClock(-HOUR_MS);
    add(2, monotonicNow() + 30);
    await sleep(100);
    expect(expired).toEqual([2]);
    heap.clear();
  });
});
