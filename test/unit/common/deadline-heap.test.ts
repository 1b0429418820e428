import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { monotonicNow } from '../../../src/common/clock.js';
import { DeadlineHeap } from '../../../src/common/deadline-heap.js';

describe('DeadlineHeap', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

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
    const add = (id: number, inMs: number): void => {
      const deadline = monotonicNow() + inMs;
      pending.set(id, deadline);
      heap.add(id, deadline);
    };
    return { pending, expired, heap, add };
  }

  it('expires pending calls in deadline order, whatever the insertion order', () => {
    const { expired, add } = setup();
    add(1, 300);
    add(2, 100);
    add(3, 200);
    add(4, 100);
    vi.advanceTimersByTime(99);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect([...expired].sort()).toEqual([2, 4]);
    vi.advanceTimersByTime(100);
    expect(expired.slice(2)).toEqual([3]);
    vi.advanceTimersByTime(100);
    expect(expired.slice(2)).toEqual([3, 1]);
  });

  it('never expires a call that settled before its deadline', () => {
    const { pending, expired, add } = setup();
    add(1, 50);
    add(2, 50);
    pending.delete(1);
    vi.advanceTimersByTime(60);
    expect(expired).toEqual([2]);
  });

  it('re-arms for an earlier deadline added after a later one', () => {
    const { expired, add } = setup();
    add(1, 10_000);
    add(2, 10);
    vi.advanceTimersByTime(10);
    expect(expired).toEqual([2]);
  });

  it('keeps memory proportional to the calls in flight when calls settle fast', () => {
    const { pending, heap, add } = setup();
    for (let id = 1; id <= 100_000; id++) {
      add(id, 30_000);
      pending.delete(id);
    }
    expect(heap.size).toBeLessThanOrEqual(2 * pending.size + 65);
  });

  it('forgets everything on clear', () => {
    const { expired, heap, add } = setup();
    add(1, 10);
    heap.clear();
    vi.advanceTimersByTime(100);
    expect(expired).toEqual([]);
  });
});
