import { afterEach, describe, expect, it, vi } from 'vitest';
import { RpcCode } from '../../../src/errors/errors.js';
import { ShuttleMetrics } from '../../../src/metrics/metrics.js';
import type { ProviderStatus, WatchedClient } from '../../../src/metrics/reports.js';

/** A watched client listing exactly the addresses in `fleet` (with what the scraped consumer gauges read). */
function clientListing(fleet: Set<string>): WatchedClient {
  return {
    providers: () => [...fleet].map((address) => ({ address, service: 'svc', breaker: 'closed', ejected: false, inFlight: 0 }) as unknown as ProviderStatus),
  };
}
function attempt(metrics: ShuttleMetrics, provider: string, code: RpcCode = RpcCode.OK, attemptNumber = 1): void {
  metrics.attempt({ service: 'svc', method: 'm', provider, attempt: attemptNumber, code, seconds: 0.01 });
}
/** Lines of the attempt series labelled by provider (the scraped gauges follow the client's list by themselves). */
const ATTEMPT_SERIES = /^shuttle_consumer_(provider_attempt|provider_retries|stream_breaks)/;
/** The distinct `provider` label values of the per-provider attempt series in a scrape. */
async function providersIn(metrics: ShuttleMetrics): Promise<Set<string>> {
  const text = await metrics.text();
  const found = new Set<string>();
  for (const line of text.split('\n')) {
    if (!ATTEMPT_SERIES.test(line)) continue;
    const match = /provider="([^"]*)"/.exec(line);
    if (match !== null) found.add(match[1]!);
  }
  return found;
}
const seriesCount = async (metrics: ShuttleMetrics): Promise<number> => (await metrics.text()).split('\n').filter((line) => ATTEMPT_SERIES.test(line)).length;

afterEach(() => {
  vi.useRealTimers();
});

describe('per-provider metrics: bounded under churn', () => {
  it('after 2,000 providers come and go, the series held are bounded and only the live ones stay', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const metrics = new ShuttleMetrics({ maxProviders: 50, departedGraceMs: 1000 });
    const fleet = new Set<string>();
    metrics.watchClient(clientListing(fleet));
    let next = 0;
    for (let round = 0; round < 200; round++) {
      fleet.clear();
      for (let i = 0; i < 10; i++) fleet.add(`10.1.${next >> 8}.${next++ & 255}:80`);
      for (const address of fleet) {
        attempt(metrics, address);
        attempt(metrics, address, RpcCode.UNAVAILABLE, 2);
      }
      vi.advanceTimersByTime(50);
    }
    const held = await providersIn(metrics);
    expect(held.size).toBeLessThanOrEqual(50);
    expect(metrics.providerLabels).toBeLessThanOrEqual(50);
    // Departed providers made room: every live one has its own series, none is `other`.
    for (const address of fleet) expect(held).toContain(address);
    expect(held).not.toContain('other');
    // Series per provider: attempts by 2 codes, latency (15 buckets + +Inf, sum, count), retries.
    expect(await seriesCount(metrics)).toBeLessThanOrEqual(50 * (2 + 18 + 1));

    // Past the grace period, a scrape holds the live providers only.
    vi.advanceTimersByTime(1500);
    for (const address of fleet) attempt(metrics, address);
    expect([...(await providersIn(metrics))].sort()).toEqual([...fleet].sort());
  });

  it('more live providers than the cap: the rest are counted as `other`, no attempt lost', async () => {
    const metrics = new ShuttleMetrics({ maxProviders: 50, departedGraceMs: 1000 });
    const fleet = new Set(Array.from({ length: 60 }, (_, i) => `10.2.0.${i}:80`));
    metrics.watchClient(clientListing(fleet));
    for (const address of fleet) attempt(metrics, address);
    const held = await providersIn(metrics);
    expect(held.size).toBe(51);
    expect(held).toContain('other');
    const totals = await metrics.providerTotals();
    expect(totals.get('other')?.attempts).toBe(10);
    expect([...totals.values()].reduce((sum, counts) => sum + counts.attempts, 0)).toBe(60);
  });

  it('with no client watched, a provider with no attempt for the grace period loses its series', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const metrics = new ShuttleMetrics({ maxProviders: 1000, departedGraceMs: 1000 });
    for (let i = 0; i < 300; i++) attempt(metrics, `10.3.${i >> 8}.${i & 255}:80`);
    vi.advanceTimersByTime(600);
    attempt(metrics, '10.3.9.9:80');
    vi.advanceTimersByTime(600);
    expect([...(await providersIn(metrics))]).toEqual(['10.3.9.9:80']);
  });
});
