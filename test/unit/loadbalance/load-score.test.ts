import { describe, expect, it } from 'vitest';
import { estimateLoad, loadScore } from '../../../src/loadbalance/load-score.js';
import { slots } from '../../../src/loadbalance/weights.js';
import type { LoadSnapshot } from '../../../src/registry/registry.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view } from '../../helpers/lb.js';

const balancers = defaultExtensions().loadbalance;
const snapshot = (at: number, running: number, waiting = 0): LoadSnapshot => ({
  timestamp: at,
  receivedAt: at,
  running,
  waiting,
  waitingUncachedTokens: 0,
  kvUsage: 0.5,
  tokensPerSecond: 100,
  draining: false,
});
const options = { staleAfterMs: 2000, prefillTokensPerSecond: 20_000 };

describe('load score capacity', () => {
  it('divides by batch slots, not by the concurrency cap an engine worker sets to 4 x slots', () => {
    const worker = view(1, { maxConcurrentCalls: 32, metadata: { slots: 8 }, load: snapshot(1000, 8) });
    expect(slots(worker.instance)).toBe(8);
    // Eight running on eight slots is one full batch ahead.
    expect(loadScore(worker, 1000, options)).toBeCloseTo(1);
  });

  it('falls back to the concurrency cap, then 1, when a provider advertises no slots', () => {
    expect(slots(view(1, { maxConcurrentCalls: 6 }).instance)).toBe(6);
    expect(slots(view(1).instance)).toBe(1);
  });

  it('makes p2c and prefix-affinity prefer the large worker of a mixed fleet at equal queues', () => {
    const now = 5000;
    for (const type of ['p2c', 'prefix-affinity']) {
      const balancer = balancers.create({ type, options: { clock: { now: () => now } } });
      const big = view(1, { maxConcurrentCalls: 128, metadata: { slots: 32 }, load: snapshot(now, 6) });
      const small = view(2, { maxConcurrentCalls: 16, metadata: { slots: 4 }, load: snapshot(now, 6) });
      expect(balancer.select([big, small], invocation()).provider, type).toBe(big);
    }
  });
});

describe('load age', () => {
  it('reads a snapshot by the clock it was stamped with (a virtual clock trusts a virtual stamp)', () => {
    // Stamped at virtual 900, read at virtual 1000: fresh. With wall time it would be 56 years old.
    const balancer = balancers.create({ type: 'p2c', options: { clock: { now: () => 1000 }, staleAfterMs: 1000 } });
    const lookedBusy = view(1, { load: snapshot(900, 100, 100) });
    const ownBusy = view(2, { inFlight: 5, load: snapshot(900, 0) });
    expect(balancer.select([lookedBusy, ownBusy], invocation()).provider).toBe(ownBusy);
  });

  it('weights a snapshot less the older it is, and only counts own calls once it is stale', () => {
    // Ten reported, and two this consumer sent after the report arrived.
    const worker = view(1, { inFlight: 2, load: snapshot(0, 10) });
    expect(estimateLoad(worker, 0, options)).toMatchObject({ requests: 12, trust: 1 });
    // Half-way to stale: half the report (with what was sent since), half the consumer's own two calls.
    expect(estimateLoad(worker, 1000, options).requests).toBeCloseTo(0.5 * 12 + 0.5 * 2);
    expect(estimateLoad(worker, 2500, options)).toMatchObject({ requests: 2, trust: 0 });
  });

  it('takes the freshest of the registry snapshot and the one piggybacked on an answer', () => {
    const worker = view(1, { load: snapshot(0, 10) });
    worker.stats.observeAnswerLoad(snapshot(400, 1));
    expect(estimateLoad(worker, 400, options).requests).toBe(1);
    // An older registry snapshot neither wins nor resets the counts of calls sent since the answer.
    worker.stats.start(100);
    worker.stats.observeLoad(snapshot(300, 50));
    expect(estimateLoad(worker, 400, options).requests).toBe(2);
  });

  it('never counts fewer requests than this consumer has running there (a report frozen at idle)', () => {
    const now = 5000;
    // Twelve calls sent and still running; then a fresh report arrives that says idle.
    const frozen = view(1, { inFlight: 12, maxConcurrentCalls: 32, metadata: { slots: 8 }, load: snapshot(now - 100, 0) });
    frozen.stats.observeAnswerLoad(snapshot(now, 0));
    const honest = view(2, { maxConcurrentCalls: 32, metadata: { slots: 8 }, load: snapshot(now, 4) });
    expect(estimateLoad(frozen, now, options).requests).toBe(12);
    for (const type of ['p2c', 'prefix-affinity', 'slo']) {
      const balancer = balancers.create({ type, options: { clock: { now: () => now } } });
      expect(balancer.select([frozen, honest], invocation('a new question '.repeat(30))).provider, type).toBe(honest);
    }
  });
});

describe('balancer environment', () => {
  it('repeats the same picks with the same seeded random source', () => {
    const seeded = (seed: number) => () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    for (const type of ['random', 'p2c', 'least-active']) {
      const providers = Array.from({ length: 6 }, (_, i) => view(i + 1));
      const picks = (random: () => number) => {
        const balancer = balancers.create({ type, options: { random } });
        return Array.from({ length: 50 }, () => balancer.select(providers, invocation()).provider.instance.port);
      };
      expect(picks(seeded(7)), type).toEqual(picks(seeded(7)));
      expect(new Set(picks(seeded(7))).size, type).toBeGreaterThan(1);
    }
  });

  it('refuses a clock without now() and a random that is not a function, naming the key', () => {
    expect(() => balancers.create({ type: 'p2c', options: { clock: 5 } })).toThrow(/p2c loadbalance clock/);
    expect(() => balancers.create({ type: 'slo', options: { random: 0.5 } })).toThrow(/slo loadbalance random/);
  });
});
