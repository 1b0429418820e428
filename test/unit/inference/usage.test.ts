import { describe, expect, it } from 'vitest';
import { checkedUsage, tokenCount } from '../../../src/inference/inference.js';

describe('reported token counts', () => {
  it('take whole counts from 0 to 100 M and nothing else', () => {
    for (const good of [0, 1, 512, 100_000_000]) expect(tokenCount(good)).toBe(good);
    for (const bad of [-1, 1.5, 1e12, Number.NaN, Number.POSITIVE_INFINITY, '12', null, undefined, {}]) expect(tokenCount(bad)).toBeUndefined();
  });

  it('read a worker’s trailer through the checks: absurd figures become 0, odd fields are dropped', () => {
    expect(
      checkedUsage({ worker: 'w1', promptTokens: 1e12, cachedTokens: -5, outputTokens: 'abc', finishReason: 'stop', model: { name: 'x' }, extra: 1 }),
    ).toEqual({ worker: 'w1', promptTokens: 0, cachedTokens: 0, outputTokens: 0, finishReason: 'stop' });
    expect(checkedUsage({ worker: 'w', promptTokens: 5, cachedTokens: 2, outputTokens: 16, model: 'm' })).toEqual({
      worker: 'w',
      promptTokens: 5,
      cachedTokens: 2,
      outputTokens: 16,
      model: 'm',
    });
    expect(checkedUsage(undefined)).toBeUndefined();
    expect(checkedUsage('usage')).toBeUndefined();
  });
});
