import { describe, expect, it } from 'vitest';
import type { LoadBalancer } from '../../../src/loadbalance/loadbalance.js';
import { publishedSummary } from '../../../src/loadbalance/prefix-tracker.js';
import { agreedChoice, rendezvousScore } from '../../../src/loadbalance/rendezvous.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view, type TestView } from '../../helpers/lb.js';

/** An slo balancer with its own state and its own (differently seeded) chance, as a separate consumer would have. */
const consumer = (seed: number): LoadBalancer => {
  let state = seed;
  const random = (): number => (state = (state * 48271) % 2147483647) / 2147483647;
  return defaultExtensions().loadbalance.create({ type: 'slo', options: { clock: { now: () => 0 }, random } });
};
const fleet = (count: number): TestView[] =>
  Array.from({ length: count }, (_, i) =>
    view(9000 + i, {
      maxConcurrentCalls: 32,
      metadata: { slots: 8, prefillTokensPerSecond: 10_000, decodeBaseMs: 6, decodePerSequenceMs: 0.35, prefillOverheadMs: 30, kvCapacityTokens: 200_000 },
    }),
  );
const prompt = (i: number): string => `system prompt ${i}: `.padEnd(4000, `rule ${i}. `);

describe('rendezvous hashing', () => {
  it('prefers each provider for a share of keys in proportion to its weight', () => {
    const providers = [
      { address: '10.0.0.1:1', weight: 32 },
      { address: '10.0.0.2:1', weight: 16 },
      { address: '10.0.0.3:1', weight: 4 },
    ];
    const wins = [0, 0, 0];
    for (let key = 0; key < 52_000; key++) {
      const scores = providers.map((provider) => rendezvousScore(key * 7919, provider.address, provider.weight));
      wins[scores.indexOf(Math.max(...scores))]!++;
    }
    expect(wins[0]! / 52_000).toBeCloseTo(32 / 52, 1);
    expect(wins[1]! / 52_000).toBeCloseTo(16 / 52, 1);
    expect(wins[2]! / 52_000).toBeCloseTo(4 / 52, 1);
  });

  it('moves only the keys of a provider that leaves', () => {
    const addresses = Array.from({ length: 8 }, (_, i) => `10.0.0.${i}:8000`);
    const home = (key: number, among: string[]): string =>
      among.reduce((best, address) => (rendezvousScore(key, address, 1) > rendezvousScore(key, best, 1) ? address : best));
    let moved = 0;
    for (let key = 1; key <= 4000; key++) {
      const before = home(key, addresses);
      const after = home(key, addresses.slice(1));
      if (before !== after) {
        expect(before).toBe(addresses[0]);
        moved++;
      }
    }
    expect(moved / 4000).toBeGreaterThan(0.08);
    expect(moved / 4000).toBeLessThan(0.17);
  });

  it('agrees only within the slack: a cheaper candidate outside it wins', () => {
    const candidates = [
      { provider: 'a', address: 'a:1', weight: 1, cost: 100, busy: 0 },
      { provider: 'b', address: 'b:1', weight: 1, cost: 100, busy: 0 },
    ];
    // Some key prefers b; with a costing 100 less, a slack of 99 does not reach b, a slack of 100 does.
    const key = Array.from({ length: 100 }, (_, k) => k).find((k) => agreedChoice(candidates, k, () => 0).provider === 'b')!;
    const cheaperA = [{ ...candidates[0]!, cost: 0 }, candidates[1]!];
    expect(agreedChoice(cheaperA, key, () => 99).provider).toBe('a');
    expect(agreedChoice(cheaperA, key, () => 100).provider).toBe('b');
  });

  it('never agrees onto a candidate busier than the average, however large the slack', () => {
    const candidates = [
      { provider: 'a', address: 'a:1', weight: 1, cost: 0, busy: 0 },
      { provider: 'b', address: 'b:1', weight: 1, cost: 10, busy: 1 },
    ];
    const key = Array.from({ length: 100 }, (_, k) => k).find((k) => rendezvousScore(k, 'b:1', 1) > rendezvousScore(k, 'a:1', 1))!;
    expect(agreedChoice(candidates, key, () => 1e9).provider).toBe('a');
    // As busy as the average (both idle): the hash may choose it.
    expect(
      agreedChoice(
        candidates.map((candidate) => ({ ...candidate, busy: 0 })),
        key,
        () => 1e9,
      ).provider,
    ).toBe('b');
  });
});

describe('slo: consumers that share nothing agree on where a new prefix goes', () => {
  it('two independent balancers pick the same worker for each new prefix on an idle fleet', () => {
    const homes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      // Fresh balancers and fresh views every time: no shared index, no shared counts, different random sources.
      const first = consumer(1 + i).select(fleet(8), invocation(`${prompt(i)} question from one user`));
      const second = consumer(1000 + i).select(fleet(8), invocation(`${prompt(i)} another user's question`));
      expect(second.provider.address).toBe(first.provider.address);
      expect(first.branch).toBe('cold');
      homes.add(first.provider.address);
    }
    // Different prefixes get different homes: agreement is per prefix, not one hot spot.
    expect(homes.size).toBeGreaterThanOrEqual(5);
  });

  it('load still overrides agreement', () => {
    const idle = fleet(8);
    const home = consumer(1).select(idle, invocation(`${prompt(7)} first`)).provider.address;
    // Another consumer whose view shows that worker busy (its own calls in flight there) goes elsewhere.
    const busy = fleet(8);
    const homeView = busy.find((entry) => entry.address === home)!;
    for (let i = 0; i < 8; i++) homeView.stats.start(1000);
    const other = consumer(2).select(busy, invocation(`${prompt(7)} second`));
    expect(other.provider.address).not.toBe(home);
  });

  it('spreads one consumer’s burst of one new prefix by load, not all onto its home', () => {
    const balancer = consumer(3);
    const workers = fleet(8);
    const counts = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      const decision = balancer.select(workers, invocation(`${prompt(i % 4)} burst ${i}`));
      (decision.provider as TestView).stats.start(decision.uncachedTokens ?? 0);
      counts.set(decision.provider.address, (counts.get(decision.provider.address) ?? 0) + 1);
    }
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(12);
  });
});

describe('published cache summary', () => {
  it('comes from the registry snapshot when a newer piggybacked report carries none', () => {
    const worker = view(1, {
      load: {
        timestamp: 0,
        receivedAt: 0,
        running: 0,
        waiting: 0,
        waitingUncachedTokens: 0,
        kvUsage: 0,
        tokensPerSecond: 0,
        draining: false,
        cachedPrefixes: [11, 12],
      },
    });
    worker.stats.observeAnswerLoad({
      timestamp: 5,
      receivedAt: 5,
      running: 1,
      waiting: 0,
      waitingUncachedTokens: 0,
      kvUsage: 0,
      tokensPerSecond: 0,
      draining: false,
    });
    expect(publishedSummary(worker)).toEqual([11, 12]);
  });
});

describe('slo: how near "near-equal" is', () => {
  /** Eight workers each running two calls; worker 0 also has nothing queued while the others have a little (it is cheapest by a few ms). */
  const loaded = (mine: boolean): TestView[] =>
    fleet(8).map((worker, i) => {
      const load = {
        timestamp: 0,
        receivedAt: 0,
        running: 2,
        waiting: 0,
        waitingUncachedTokens: i === 0 ? 0 : 100,
        kvUsage: 0,
        tokensPerSecond: 0,
        draining: false,
      };
      // Mine: this consumer's own two calls, started before the report that counts them.
      if (mine) for (let k = 0; k < 2; k++) worker.stats.start(0);
      worker.stats.observeAnswerLoad(load);
      return worker;
    });

  it('settles near-equal costs by the prompt when other consumers send the load, by cost when it is all this consumer’s', () => {
    const cheapest = loaded(false)[0]!.address;
    let agreedElsewhere = 0;
    for (let i = 0; i < 20; i++) {
      const shared = consumer(10 + i).select(loaded(false), invocation(`${prompt(100 + i)} a`)).provider.address;
      expect(consumer(50 + i).select(loaded(false), invocation(`${prompt(100 + i)} b`)).provider.address).toBe(shared);
      if (shared !== cheapest) agreedElsewhere++;
      // Alone in front of the fleet there is nobody to agree with: the cheapest, every time.
      expect(consumer(90 + i).select(loaded(true), invocation(`${prompt(100 + i)} c`)).provider.address).toBe(cheapest);
    }
    expect(agreedElsewhere).toBeGreaterThan(10);
  });
});
