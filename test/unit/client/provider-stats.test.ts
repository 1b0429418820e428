import { describe, expect, it } from 'vitest';
import { ProviderStatsTable } from '../../../src/client/provider-stats.js';

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
});
