import { describe, expect, it } from 'vitest';
import type { ProviderStatus } from '../../../src/client/client.js';
import { FleetHistory } from '../../../src/metrics/fleet.js';
import { ShuttleMetrics } from '../../../src/metrics/metrics.js';

const status = (name: string, port: number, extra: Partial<ProviderStatus> = {}): ProviderStatus => ({
  service: 'inference.LLM',
  version: '1.0.0',
  group: '',
  address: `127.0.0.1:${port}`,
  protocol: 'tcp',
  weight: 100,
  metadata: { name },
  load: undefined,
  inFlight: 0,
  averageLatencyMs: undefined,
  connection: 'ready',
  breaker: 'closed',
  ejected: false,
  ejectedUntil: undefined,
  ...extra,
});

describe('the fleet history behind the dashboard', () => {
  it('shows a provider listed twice (from the registry and by its URL) with its registry name, whichever comes first', async () => {
    const bare = status('x', 1, { metadata: {} });
    for (const listed of [
      [status('a', 1), bare],
      [bare, status('a', 1)],
    ]) {
      const fleet = new FleetHistory([{ providers: () => listed }], new ShuttleMetrics(), 60_000);
      fleet.sample(1000);
      const snapshot = await fleet.snapshot(2000);
      expect(snapshot.providers.map((entry) => entry.status.metadata['name'])).toEqual(['a']);
      expect(snapshot.events.map((event) => `${event.provider} ${event.kind}`)).toEqual(['a joined']);
    }
  });

  it('keeps at most the 256 newest providers that went away, however fast the registry churns', async () => {
    let listed: ProviderStatus[] = [];
    const fleet = new FleetHistory([{ providers: () => listed }], new ShuttleMetrics(), 600_000);
    for (let port = 1; port <= 2000; port++) {
      listed = [status(`p${port}`, port)];
      fleet.sample(port);
    }
    listed = [];
    fleet.sample(3000);
    const snapshot = await fleet.snapshot(3001);
    expect(snapshot.providers).toHaveLength(256);
    expect(snapshot.providers.some((entry) => entry.status.address === '127.0.0.1:2000')).toBe(true);
    expect(snapshot.providers.some((entry) => entry.status.address === '127.0.0.1:1')).toBe(false);
  });

  it('keeps a provider that went away as down, with why, for the retention period, and records the events', async () => {
    let listed: ProviderStatus[] = [status('a', 1), status('b', 2), status('c', 3)];
    const metrics = new ShuttleMetrics();
    const fleet = new FleetHistory([{ providers: () => listed }], metrics, 60_000);
    fleet.sample(1000);
    // b's breaker opens and its connection fails, then it leaves; c drains, then leaves; a stays.
    listed = [
      status('a', 1),
      status('b', 2, { breaker: 'open', connection: 'transient-failure' }),
      status('c', 3, { load: { running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, timestamp: 0, draining: true } }),
    ];
    fleet.sample(2000);
    metrics.attempt({ service: 'inference.LLM', method: 'generate', provider: '127.0.0.1:2', attempt: 1, code: 0, seconds: 0.1 });
    metrics.attempt({ service: 'inference.LLM', method: 'generate', provider: '127.0.0.1:2', attempt: 1, code: 14, seconds: 1, midStream: true });
    metrics.attempt({ service: 'inference.LLM', method: 'generate', provider: '127.0.0.1:1', attempt: 2, code: 8, seconds: 0.1 });
    listed = [status('a', 1)];
    const snapshot = await fleet.snapshot(3000);
    const byName = Object.fromEntries(snapshot.providers.map((entry) => [entry.status.metadata['name'], entry]));
    expect(byName['a']).toMatchObject({ state: 'up', since: 1000, counts: { attempts: 1, shed: 1, retries: 1, failed: 0, broken: 0 } });
    expect(byName['b']).toMatchObject({
      state: 'down',
      since: 3000,
      why: expect.stringMatching(/^died: its connection failed \(breaker open, connection transient-failure\)/),
      counts: { attempts: 1, broken: 1 },
    });
    expect(byName['c']).toMatchObject({ state: 'down', since: 3000, why: 'drained and left the registry' });
    expect(snapshot.events.map((event) => `${event.provider} ${event.kind}`)).toEqual([
      'c drained',
      'b died',
      'c draining',
      'b breaker opened',
      'c joined',
      'b joined',
      'a joined',
    ]);
    // Past the retention period the down ones are dropped; one that comes back is up again.
    listed = [status('a', 1), status('c', 3)];
    const later = await fleet.snapshot(3000 + 60_001);
    expect(later.providers.map((entry) => `${entry.status.metadata['name']} ${entry.state}`)).toEqual(['a up', 'c up']);
  });

  it('calls a provider that left while this client had calls in flight to it dead, even before its connection was seen to fail', async () => {
    let listed: ProviderStatus[] = [status('a', 1), status('b', 2)];
    const fleet = new FleetHistory([{ providers: () => listed }], new ShuttleMetrics(), 60_000);
    listed = [status('a', 1, { inFlight: 3 }), status('b', 2)];
    fleet.sample(1000);
    listed = [];
    const byName = Object.fromEntries((await fleet.snapshot(2000)).providers.map((entry) => [entry.status.metadata['name'], entry.why]));
    expect(byName).toEqual({ a: 'died: it left the registry with 3 calls of this client in flight', b: 'left the registry' });
  });

  it('keeps at most maxEvents events', async () => {
    let flip = false;
    const fleet = new FleetHistory([{ providers: () => [status('a', 1, { breaker: (flip = !flip) ? 'open' : 'closed' })] }], new ShuttleMetrics(), 60_000, 5);
    for (let i = 0; i < 20; i++) fleet.sample(i);
    expect((await fleet.snapshot(21)).events).toHaveLength(5);
  });
});
