import { describe, expect, it } from 'vitest';
import { recoveryDelayMs } from '../../../src/registry/etcd/provider-session.js';

describe('recoveryDelayMs (an etcd provider re-registering after its lease was lost)', () => {
  it('spreads the first attempt over up to half the pace (at most 250 ms), not at once', () => {
    expect(recoveryDelayMs(0, 3000, () => 0)).toBe(0);
    expect(recoveryDelayMs(0, 3000, () => 0.999)).toBeCloseTo(249.75);
    expect(recoveryDelayMs(0, 300, () => 0.999)).toBeCloseTo(149.85);
  });

  it('draws later attempts from half to all of their backoff, which doubles up to the pace and 2 s', () => {
    expect(recoveryDelayMs(1, 3000, () => 0)).toBe(250);
    expect(recoveryDelayMs(1, 3000, () => 1)).toBe(500);
    expect(recoveryDelayMs(5, 3000, () => 0)).toBe(1000);
    expect(recoveryDelayMs(5, 3000, () => 1)).toBe(2000);
    expect(recoveryDelayMs(5, 667, () => 1)).toBe(667);
  });

  it('gives a fleet drawing at random many different delays', () => {
    for (const attempt of [0, 1, 3]) {
      const delays = Array.from({ length: 100 }, () => Math.round(recoveryDelayMs(attempt, 3000)));
      expect(new Set(delays).size).toBeGreaterThan(50);
    }
  });
});
