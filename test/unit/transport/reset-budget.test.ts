import { afterEach, describe, expect, it, vi } from 'vitest';
import { ResetBudget } from '../../../src/transport/grpc/reset-budget.js';
import { HOUR_MS, stepWallClock } from '../../helpers/wall-clock.js';

describe('ResetBudget', () => {
  it('asks for a fresh connection with 400 of the provider’s 1,000 cancellations left, and refills at 33 a second', () => {
    let now = 0;
    const budget = new ResetBudget(() => now);
    for (let i = 0; i < 600; i++) expect(budget.spend(), `cancel ${i + 1}`).toBe(false);
    expect(budget.spend()).toBe(true);
    // Ten seconds later, 330 more are allowed (at most the burst of 1,000).
    now = 10_000;
    for (let i = 0; i < 329; i++) expect(budget.spend(), `cancel ${i + 1} after the refill`).toBe(false);
    expect(budget.spend()).toBe(true);
    now = 1_000_000;
    for (let i = 0; i < 600; i++) expect(budget.spend()).toBe(false);
    expect(budget.spend()).toBe(true);
  });

  it('on its default clock, is not emptied by the wall clock stepping back by an hour (nor refilled by a step forward)', () => {
    for (const step of [-HOUR_MS, HOUR_MS]) {
      // The wall clock made steppable before the budget is made: a default clock may be kept by reference.
      stepWallClock(0);
      const budget = new ResetBudget();
      for (let i = 0; i < 590; i++) budget.spend();
      stepWallClock(step);
      // 10 of the 600 allowed before a fresh connection is asked for remain: no more, no fewer.
      for (let i = 0; i < 10; i++) expect(budget.spend(), `cancel ${591 + i}, clock stepped ${step} ms`).toBe(false);
      expect(budget.spend()).toBe(true);
      vi.restoreAllMocks();
    }
  });
});
afterEach(() => vi.restoreAllMocks());
