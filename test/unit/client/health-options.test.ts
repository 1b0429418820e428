import { describe, expect, it } from 'vitest';
import { createClient } from '../../../src/client/client.js';

/* The breaker, ejection and retry-budget options are checked against what each can mean. */
describe('fault-tolerance options', () => {
  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'a threshold over 100 %',
      { circuitBreaker: { errorThresholdPercentage: 200 } },
      /circuitBreaker\.errorThresholdPercentage: 200 \(allowed: a number from 1 to 100\)/,
    ],
    [
      'a reset past the largest timer',
      { circuitBreaker: { resetTimeoutMs: 1e12 } },
      /circuitBreaker\.resetTimeoutMs: 1000000000000 \(allowed: an integer from 1 to 2147483647\)/,
    ],
    ['a fractional volume', { circuitBreaker: { volumeThreshold: 0.5 } }, /circuitBreaker\.volumeThreshold: 0\.5 \(allowed: an integer from 1 to/],
    ['ejection after no failures', { outlierEjection: { consecutiveFailures: 0 } }, /outlierEjection\.consecutiveFailures: 0 \(allowed: an integer from 1 to/],
    ['an ejection past the largest timer', { outlierEjection: { baseMs: 1e12 } }, /outlierEjection\.baseMs: 1000000000000/],
    [
      'a longest ejection shorter than the first',
      { outlierEjection: { baseMs: 10_000, maxMs: 5000 } },
      /outlierEjection\.maxMs: 5000 \(allowed: an integer from baseMs \(10000\)/,
    ],
    ['more than every provider ejected', { outlierEjection: { maxPercent: 101 } }, /outlierEjection\.maxPercent: 101 \(allowed: a number from 0 to 100\)/],
    ['a budget of no tokens', { retryBudget: { maxTokens: 0 } }, /retryBudget\.maxTokens: 0 \(allowed: a number from 1 to 1000\)/],
    ['a negative ratio', { retryBudget: { ratio: -1 } }, /retryBudget\.ratio: -1 \(allowed: a number from 0\.001 to 10\)/],
  ];
  it.each(refused)('refuses %s, naming the option, the value and what is allowed', async (_what, options, message) => {
    await expect(createClient({ registry: 'shuttle://127.0.0.1:1', config: false, log: false, ...options })).rejects.toThrow(message);
  });

  it('accepts values at the edges of each range', async () => {
    const client = await createClient({
      registry: 'shuttle://127.0.0.1:1',
      config: false,
      log: false,
      circuitBreaker: { errorThresholdPercentage: 100, volumeThreshold: 1, resetTimeoutMs: 2147483647 },
      outlierEjection: { consecutiveFailures: 1, baseMs: 1, maxMs: 1, maxPercent: 0 },
      retryBudget: { ratio: 0.001, maxTokens: 1 },
    });
    await client.close();
  });
});
