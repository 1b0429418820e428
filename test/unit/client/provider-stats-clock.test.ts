import { afterEach, describe, expect, it, vi } from 'vitest';
import { MethodKeys } from '../../../src/client/method-wait.js';
import { LiveProviderStats } from '../../../src/client/provider-stats.js';
import { withoutStalled } from '../../../src/client/stalled.js';
import { monotonicNow } from '../../../src/common/clock.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

afterEach(() => vi.restoreAllMocks());

describe('a provider’s quiet time across a wall-clock step', () => {
  it('forward by an hour: a call sent 20 ms ago does not make its provider look hung', async () => {
    const waiting = new LiveProviderStats();
    const idle = new LiveProviderStats();
    const method = new MethodKeys().of('test.S', 'work');
    waiting.start(10, monotonicNow(), method);
    stepWallClock(HOUR_MS);
    await sleep(20);
    expect(waiting.quietMs()).toBeLessThan(1000);
    const views = [{ stats: waiting }, { stats: idle }];
    expect(withoutStalled(views, method, monotonicNow())).toEqual(views);
  });

  it('back by an hour: a provider silent for 1.2 s with a call waiting is still found out', async () => {
    const waiting = new LiveProviderStats();
    waiting.start(10);
    stepWallClock(-HOUR_MS);
    await sleep(1200);
    expect(waiting.quietMs()).toBeGreaterThanOrEqual(1100);
  });

  it('back by an hour: a failed answer’s weight still fades', async () => {
    const stats = new LiveProviderStats();
    stats.failedAnswer();
    expect(stats.failing).toBeGreaterThan(0.9);
    stepWallClock(-HOUR_MS);
    await sleep(50);
    // It fades with the typical call time (a fresh stats' default), not an hour later.
    expect(stats.failing).toBeLessThan(1);
  });
});
