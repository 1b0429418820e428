import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../../src/cluster/retry-budget.js';

describe('retry budget (gRFC A6 throttling)', () => {
  it('starts full: a fresh client may retry at once', () => {
    const budget = new RetryBudget();
    expect(budget.tokens).toBe(100);
    expect(budget.allowRetry()).toBe(true);
  });

  it('costs 1 a failure and allows retries only while more than half remains', () => {
    const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    for (let i = 0; i < 4; i++) budget.recordFailure();
    expect(budget.allowRetry()).toBe(true); // 6 > 5
    budget.recordFailure();
    expect(budget.allowRetry()).toBe(false); // 5 is not more than half
    expect(budget.refused).toBe(1);
    budget.recordSuccess();
    expect(budget.allowRetry()).toBe(true); // 5.1
  });

  it('counts in thousandths: ten successes of 0.1 earn exactly one token', () => {
    const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    for (let i = 0; i < 5; i++) budget.recordFailure();
    for (let i = 0; i < 10; i++) budget.recordSuccess();
    expect(budget.tokens).toBe(6);
    const third = new RetryBudget({ ratio: 0.333, maxTokens: 3 });
    for (let i = 0; i < 3; i++) third.recordFailure();
    for (let i = 0; i < 3; i++) third.recordSuccess();
    expect(third.tokens).toBe(0.999);
  });

  it('stays between 0 and maxTokens', () => {
    const budget = new RetryBudget({ ratio: 1, maxTokens: 2 });
    for (let i = 0; i < 10; i++) budget.recordSuccess();
    expect(budget.tokens).toBe(2);
    for (let i = 0; i < 10; i++) budget.recordFailure();
    expect(budget.tokens).toBe(0);
    budget.recordSuccess();
    expect(budget.tokens).toBe(1);
  });

  it('never refuses when turned off, and names bad options', () => {
    const off = new RetryBudget(false);
    for (let i = 0; i < 100; i++) off.recordFailure();
    expect(off.allowRetry()).toBe(true);
    expect(() => new RetryBudget({ ratio: 0, maxTokens: 10 })).toThrow(/retryBudget\.ratio.*0\.001 to 10/);
    expect(() => new RetryBudget({ ratio: 0.1, maxTokens: 5000 })).toThrow(/retryBudget\.maxTokens.*1 to 1000/);
    expect(() => new RetryBudget({ ratio: Number.NaN, maxTokens: 10 })).toThrow(/retryBudget\.ratio/);
  });
});
