import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProviderHealth } from '../../../src/cluster/provider-health.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

/*
 * Ejections, overload pauses and breakers last as long as they say in real time, whatever the
 * wall clock does meanwhile (an NTP step, a VM resumed from suspend).
 */
afterEach(() => vi.restoreAllMocks());

const fail = (error: RpcError) => () => Promise.reject(error);
const unavailable = new RpcError(RpcCode.UNAVAILABLE, 'down');

async function ejected(baseMs: number): Promise<ProviderHealth> {
  const health = new ProviderHealth(undefined, { consecutiveFailures: 2, baseMs, maxMs: baseMs, maxPercent: 100 });
  for (let i = 0; i < 2; i++) await health.run('a', fail(unavailable)).catch(() => {});
  expect(health.available('a')).toBe(false);
  return health;
}

describe('a wall-clock step', () => {
  it('back by an hour does not stretch a 150 ms ejection to an hour', async () => {
    const health = await ejected(150);
    stepWallClock(-HOUR_MS);
    await sleep(200);
    expect(health.available('a')).toBe(true);
    expect(health.ejection('a').ejected).toBe(false);
    health.close();
  });

  it('forward by an hour does not end a 60 s ejection at once', async () => {
    const health = await ejected(60_000);
    stepWallClock(HOUR_MS);
    expect(health.available('a')).toBe(false);
    expect(health.ejection('a').ejected).toBe(true);
    health.close();
  });

  it("back by an hour does not stretch an overload refusal's pause to an hour", async () => {
    const health = new ProviderHealth(undefined, undefined);
    await health.run('a', fail(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'full', { retryAfterMs: 100 }))).catch(() => {});
    expect(health.refusing('a')).toBe(true);
    stepWallClock(-HOUR_MS);
    await sleep(150);
    expect(health.refusing('a')).toBe(false);
    health.close();
  });

  it('back by an hour leaves an open breaker to half-open after its reset time (opossum times it with setTimeout)', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 100, rollingWindowMs: 10_000, probeTimeoutMs: 1000 },
      undefined,
    );
    for (let i = 0; i < 2; i++) await health.run('a', fail(unavailable)).catch(() => {});
    expect(health.breakerState('a')).toBe('open');
    stepWallClock(-HOUR_MS);
    await sleep(150);
    expect(health.breakerState('a')).toBe('half-open');
    expect(health.available('a')).toBe(true);
    health.close();
  });
});
