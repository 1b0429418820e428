import { describe, expect, it } from 'vitest';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { capacity, effectiveWeight } from '../../../src/loadbalance/weights.js';
import { ProviderStatsTable } from '../../../src/client/provider-stats.js';
import { createInvocation } from '../../../src/call/invocation.js';
import { invocation, tally, view } from '../../helpers/lb.js';

const balancers = defaultExtensions().loadbalance;
const PICKS = 100_000;

describe.each(['random', 'round-robin'])('%s', (name) => {
  it('converges to the weights within 2 percentage points over 100k picks', () => {
    const providers = [view(1, { weight: 100 }), view(2, { weight: 300 }), view(3, { weight: 600 })];
    const balancer = balancers.create(name);
    const counts = tally(PICKS, () => balancer.select(providers, invocation()).provider);
    for (const [port, share] of [
      [1, 0.1],
      [2, 0.3],
      [3, 0.6],
    ] as const) {
      expect(Math.abs(counts.get(port)! / PICKS - share), `port ${port}`).toBeLessThan(0.02);
    }
  });

  it('ramps a newly started provider up over the warm-up', () => {
    const now = Date.now();
    const providers = [view(1, { startTime: now - 60 * 60 * 1000 }), view(2, { startTime: now - 60_000 })];
    const balancer = balancers.create({ type: name, options: { warmupMs: 600_000 } });
    const counts = tally(20_000, () => balancer.select(providers, invocation()).provider);
    // One minute into a ten-minute warm-up: weight 10 of 100, about 1/11 of the picks.
    expect(counts.get(2)! / 20_000).toBeGreaterThan(0.07);
    expect(counts.get(2)! / 20_000).toBeLessThan(0.115);
  });
});

describe.each(['random', 'round-robin'])('%s warm-up', (name) => {
  it('weighs providers started seconds apart by their uptime, not by a rounded weight (2:1:1:1)', () => {
    const now = 1_000_000_000;
    const clock = { now: () => now };
    // 9.5, 8.5, 7.5 and 6.5 s into a ten-minute warm-up: weights 1.58, 1.42, 1.25, 1.08 of 100.
    const providers = [9500, 8500, 7500, 6500].map((uptime, i) => view(i + 1, { startTime: now - uptime }));
    const balancer = balancers.create({ type: name, options: { warmupMs: 600_000, clock } });
    const counts = tally(20_000, () => balancer.select(providers, invocation()).provider);
    const expected = [9500, 8500, 7500, 6500].map((uptime) => uptime / 32_000);
    for (let i = 0; i < 4; i++) expect(Math.abs(counts.get(i + 1)! / 20_000 - expected[i]!), `port ${i + 1}`).toBeLessThan(0.02);
  });
});

describe('round-robin', () => {
  it('interleaves smoothly (nginx): weights 5:1:1 give a a b a c a a', () => {
    const providers = [view(1, { weight: 5 }), view(2, { weight: 1 }), view(3, { weight: 1 })];
    const balancer = balancers.create('round-robin');
    const order = Array.from({ length: 7 }, () => balancer.select(providers, invocation()).provider.instance.port);
    expect(order).toEqual([1, 1, 2, 1, 3, 1, 1]);
  });
});

describe('weights and capacity', () => {
  it('never lets warm-up push a weight below 1 or above the configured weight', () => {
    const now = 1_000_000;
    expect(effectiveWeight(view(1, { startTime: now }).instance, now, 600_000)).toBe(1);
    expect(effectiveWeight(view(1, { startTime: now - 300_000 }).instance, now, 600_000)).toBe(50);
    expect(effectiveWeight(view(1, { startTime: now - 900_000 }).instance, now, 600_000)).toBe(100);
    expect(effectiveWeight(view(1, { startTime: 0 }).instance, now, 600_000)).toBe(100);
  });

  it('reads capacity from maxConcurrentCalls, else metadata.slots', () => {
    expect(capacity(view(1, { maxConcurrentCalls: 4 }).instance)).toBe(4);
    expect(capacity(view(1, { metadata: { slots: 8 } }).instance)).toBe(8);
    expect(capacity(view(1).instance)).toBe(Infinity);
  });
});

describe('least-active', () => {
  it('picks the fewest in flight, ties drawn in proportion to weight (Dubbo)', () => {
    const balancer = balancers.create('least-active');
    const providers = [
      view(1, { inFlight: 3 }),
      view(2, { inFlight: 1, weight: 50 }),
      view(3, { inFlight: 1, weight: 200 }),
      view(4, { inFlight: 1, weight: 200 }),
    ];
    const counts = tally(20_000, () => balancer.select(providers, invocation()).provider);
    expect([...counts.keys()].sort()).toEqual([2, 3, 4]);
    expect(Math.abs(counts.get(2)! / 20_000 - 1 / 9)).toBeLessThan(0.02);
    expect(Math.abs(counts.get(3)! / 20_000 - 4 / 9)).toBeLessThan(0.02);
  });

  it('spreads idle providers started seconds apart during the warm-up, not all to the oldest', () => {
    const now = 1_000_000_000;
    const providers = [9500, 8500, 7500, 6500].map((uptime, i) => view(i + 1, { startTime: now - uptime }));
    const balancer = balancers.create({ type: 'least-active', options: { warmupMs: 600_000, clock: { now: () => now } } });
    const counts = tally(20_000, () => balancer.select(providers, invocation()).provider);
    for (let i = 0; i < 4; i++) expect(counts.get(i + 1)! / 20_000, `port ${i + 1}`).toBeGreaterThan(0.15);
  });
});

describe.each(['least-active', 'p2c', 'shortest-response'])('%s and concurrency caps', (name) => {
  it('never picks a provider at its cap while another has room', () => {
    const balancer = balancers.create(name);
    const full = view(1, { inFlight: 4, maxConcurrentCalls: 4 });
    const roomy = [view(2, { inFlight: 30 }), view(3, { inFlight: 30, metadata: { slots: 64 } })];
    for (let i = 0; i < 5000; i++) expect(balancer.select([full, ...roomy], invocation()).provider.instance.port).not.toBe(1);
    // When every provider is full, one is still returned: the provider's own refusal is the honest answer.
    expect(balancer.select([full, view(5, { inFlight: 2, maxConcurrentCalls: 2 })], invocation()).provider).toBeDefined();
  });
});

describe('shortest-response', () => {
  it('prefers the lowest average latency x (in flight + 1)', () => {
    const balancer = balancers.create('shortest-response');
    const fast = view(1);
    const slow = view(2);
    const now = Date.now();
    for (let i = 0; i < 20; i++) {
      fast.stats.start(0);
      fast.stats.end(0, 10, now, true);
      slow.stats.start(0);
      slow.stats.end(0, 100, now, true);
    }
    expect(balancer.select([fast, slow], invocation()).provider).toBe(fast);
    // Ten calls in flight on the fast one: 10 ms x 11 = 110 ms > 100 ms x 1.
    for (let i = 0; i < 10; i++) fast.stats.start(0);
    expect(balancer.select([fast, slow], invocation()).provider).toBe(slow);
  });

  it('judges the called method by its own latency: a worker that ran one 10 s generation still gets its share of 5 ms embeddings', () => {
    const balancer = balancers.create('shortest-response');
    const table = new ProviderStatsTable();
    const embed = table.methodKey('inference.LLM', 'embed');
    const generate = table.methodKey('inference.LLM', 'generate');
    const [busy, idle] = [1, 2].map((port) => ({ ...view(port), stats: table.get(`10.0.0.1:${port}`) }));
    const now = Date.now();
    for (const provider of [busy, idle]) {
      for (let i = 0; i < 20; i++) {
        provider!.stats.start(0, now, embed);
        provider!.stats.end(0, 5, now, false, true, embed);
      }
    }
    busy!.stats.start(0, now, generate);
    busy!.stats.end(0, 10_000, now, false, true, generate);
    // 40 embeddings left in flight: by one average for all methods (about 480 ms against 5 ms),
    // every one went to the idle worker.
    const picks = new Map<number, number>();
    const call = createInvocation({ service: 'inference.LLM', version: '1.0.0', method: 'embed', request: {} });
    for (let i = 0; i < 40; i++) {
      const picked = balancer.select([busy!, idle!], call).provider as typeof busy;
      picks.set(picked!.instance.port, (picks.get(picked!.instance.port) ?? 0) + 1);
      picked!.stats.start(0, now, embed);
    }
    expect(picks.get(1)).toBe(20);
    expect(picks.get(2)).toBe(20);
  });
});

describe('p2c', () => {
  it('takes the less loaded of two by the reported snapshot plus what was sent since', () => {
    const balancer = balancers.create('p2c');
    const now = Date.now();
    const busy = view(1, {
      load: { timestamp: now, receivedAt: now, running: 8, waiting: 4, waitingUncachedTokens: 5000, kvUsage: 0.9, tokensPerSecond: 100, draining: false },
      metadata: { slots: 8 },
    });
    const idle = view(2, {
      load: { timestamp: now, receivedAt: now, running: 1, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0.1, tokensPerSecond: 100, draining: false },
      metadata: { slots: 8 },
    });
    const decision = balancer.select([busy, idle], invocation());
    expect(decision.provider).toBe(idle);
    expect(decision.detail?.['score']).toBeCloseTo(1 / 8);
  });

  it('ignores a stale snapshot and counts only its own calls in flight', () => {
    const balancer = balancers.create({ type: 'p2c', options: { staleAfterMs: 1000 } });
    const old = Date.now() - 5000;
    const lookedBusy = view(1, {
      inFlight: 0,
      load: { timestamp: old, receivedAt: old, running: 100, waiting: 100, waitingUncachedTokens: 0, kvUsage: 1, tokensPerSecond: 0, draining: false },
    });
    const ownBusy = view(2, { inFlight: 5 });
    expect(balancer.select([lookedBusy, ownBusy], invocation()).provider).toBe(lookedBusy);
  });
});

describe('room under the concurrency cap, at fleet size', () => {
  it.each(['p2c', 'least-active'])('%s: a pick among idle providers reads no provider’s capacity', (name) => {
    let reads = 0;
    const counted = (): Record<string, unknown> =>
      new Proxy({ slots: 8 } as Record<string, unknown>, {
        get(target, key) {
          if (key === 'slots') reads++;
          return target[key as string];
        },
      });
    const providers = Array.from({ length: 500 }, (_, i) => view(i + 1, { metadata: counted() }));
    // One busy provider: the balancers then ask every candidate whether it has room.
    (providers[0]!.stats as { start(tokens: number): void }).start(0);
    const balancer = defaultExtensions().loadbalance.create(name);
    balancer.select(providers, invocation('warm'));
    reads = 0;
    for (let call = 0; call < 20; call++) balancer.select(providers, invocation(`key-${call}`));
    // The busy one may be asked (once a call, or a few times); the 499 idle ones never.
    expect(reads).toBeLessThanOrEqual(20 * 4);
  });
});
