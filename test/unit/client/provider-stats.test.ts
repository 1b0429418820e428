import { describe, expect, it } from 'vitest';
import { ProviderStatsTable } from '../../../src/client/provider-stats.js';
import { busyCalls } from '../../../src/loadbalance/weights.js';

describe('provider statistics', () => {
  it('count only successful calls in the average latency: a provider that fails at once does not look fastest', () => {
    const stats = new ProviderStatsTable().get('127.0.0.1:1');
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      stats.start(0);
      stats.end(0, 200, now, false, true);
    }
    for (let i = 0; i < 50; i++) {
      stats.start(0);
      stats.end(0, 1, now, false, false);
    }
    expect(stats.averageLatencyMs(now)).toBe(200);
    expect(stats.inFlight).toBe(0);
  });

  it("count failed answers as calls held for a successful call's time, fading after it", () => {
    const stats = new ProviderStatsTable().get('127.0.0.1:1');
    const now = 1_000_000;
    // Successful calls of 20 ms teach how long a call holds the provider.
    for (let i = 0; i < 100; i++) {
      stats.start(0, now);
      stats.end(0, 20, now, false, true);
    }
    expect(stats.failing).toBe(0);
    stats.failedAnswer(now);
    stats.failedAnswer(now);
    const fresh = stats.failing;
    // Read on the wall clock: the two failures were counted at a fixed instant in the past, so
    // they have faded already; counted now, they count as about two calls.
    expect(fresh).toBe(0);
    const wall = Date.now();
    stats.failedAnswer(wall);
    stats.failedAnswer(wall);
    expect(stats.failing).toBeGreaterThan(1.5);
    expect(stats.failing).toBeLessThanOrEqual(2);
  });

  it('a provider that fails every call at once is not the least active once its failures are counted', () => {
    const table = new ProviderStatsTable();
    const healthy = table.get('127.0.0.1:1');
    const failing = table.get('127.0.0.1:2');
    const wall = Date.now();
    healthy.start(0, wall);
    for (let i = 0; i < 4; i++) failing.failedAnswer(wall);
    expect(busyCalls(failing)).toBeGreaterThan(busyCalls(healthy));
  });

  it('count quiet time only while a call awaits its first answer: a stream delivering chunks is not a hung provider', () => {
    const stats = new ProviderStatsTable().get('127.0.0.1:1');
    stats.start(0, 1000);
    expect(stats.quietMs(3000)).toBe(2000);
    // Its first chunk: answered, and a long stream after it is no silence.
    stats.answered(0, 3000);
    expect(stats.quietMs(60_000)).toBe(0);
    // Another call waits from its start; an answer of any call is news.
    stats.start(0, 61_000);
    expect(stats.quietMs(62_500)).toBe(1500);
    stats.heard(62_000);
    expect(stats.quietMs(62_500)).toBe(500);
    stats.end(0, 10, 63_000, false, false);
    expect(stats.quietMs(70_000)).toBe(0);
  });
});
