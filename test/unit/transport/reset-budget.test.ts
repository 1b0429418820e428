import { describe, expect, it } from 'vitest';
import { ResetBudget } from '../../../src/transport/grpc/reset-budget.js';

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
});
