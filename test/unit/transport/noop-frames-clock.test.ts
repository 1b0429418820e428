import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_NOOP_FRAMES, NOOP_WINDOW_MS, NoopFrameBudget } from '../../../src/transport/tcp/noop-frames.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

afterEach(() => vi.restoreAllMocks());

describe('the no-op frame budget across a wall-clock step back', () => {
  it('starts a new window once a real window has passed: an honest peer is not taken for a flood', async () => {
    const budget = new NoopFrameBudget();
    for (let i = 0; i < MAX_NOOP_FRAMES - 1; i++) expect(budget.spend()).toBe(false);
    stepWallClock(-HOUR_MS);
    await sleep(NOOP_WINDOW_MS + 50);
    expect(budget.spend()).toBe(false);
  });
});
