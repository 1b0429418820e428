import { describe, expect, it } from 'vitest';
import { PrefixIndex } from '../../../src/loadbalance/prefix-index.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { chatWorkload, oracle, simulate } from '../../helpers/cache-sim.js';
import { invocation, view } from '../../helpers/lb.js';

const create = (options: Record<string, unknown> = {}) => defaultExtensions().loadbalance.create({ type: 'prefix-affinity', options });

describe('prefix-affinity on a shared-prefix workload', () => {
  it('reaches at least 90% of an oracle cache-hit rate, with no provider over 1.5x the average load', () => {
    const prompts = chatWorkload(4000, 24);
    // Eight providers; each cache holds about 6 of the 24 system prompts (4 KiB each).
    const cacheBlocks = 400;
    const affinity = simulate(create(), prompts, 8, cacheBlocks);
    const best = simulate(oracle(4), prompts, 8, cacheBlocks);
    const random = simulate(defaultExtensions().loadbalance.create('random'), prompts, 8, cacheBlocks);
    const average = prompts.length / 8;
    console.log(
      `hit rate: prefix-affinity ${(affinity.hitRate * 100).toFixed(1)} %, oracle ${(best.hitRate * 100).toFixed(1)} %, random ${(random.hitRate * 100).toFixed(1)} %; ` +
        `max load ${(Math.max(...affinity.perProvider) / average).toFixed(2)} x average`,
    );
    expect(affinity.hitRate).toBeGreaterThanOrEqual(0.9 * best.hitRate);
    expect(affinity.hitRate).toBeGreaterThan(random.hitRate + 0.1);
    expect(Math.max(...affinity.perProvider)).toBeLessThanOrEqual(1.5 * average);
  });
});

describe('prefix-affinity decisions', () => {
  const system = 'You are a helpful assistant. '.repeat(20);

  it('explains itself: fallback without a prompt, cold, then hit, then spill when the hit is too busy', () => {
    const balancer = create({ spillMargin: 0.5 });
    const providers = [view(1, { metadata: { slots: 8 } }), view(2, { metadata: { slots: 8 } })];
    expect(balancer.select(providers, invocation()).branch).toBe('fallback');
    const cold = balancer.select(providers, invocation(`${system} question one`));
    expect(cold.branch).toBe('cold');
    const hit = balancer.select(providers, invocation(`${system} question two`));
    expect(hit.branch).toBe('hit');
    expect(hit.provider).toBe(cold.provider);
    expect(Number(hit.detail?.['matched'])).toBeGreaterThan(5);
    // Make the cached provider busy: 5 calls in flight on 8 slots = score 0.625 > 0 + 0.5.
    for (let i = 0; i < 5; i++) (hit.provider.stats as (typeof providers)[number]['stats']).start(0);
    const spill = balancer.select(providers, invocation(`${system} question three`));
    expect(spill.branch).toBe('spill');
    expect(spill.provider).not.toBe(hit.provider);
  });

  it('keeps its index within the providers’ advertised KV capacity', () => {
    const balancer = create({ blockChars: 64 });
    // 256 tokens of KV = 16 blocks of 16 tokens; every prompt below is 16 blocks long.
    const providers = [view(1, { metadata: { kvCapacityTokens: 256 } })];
    const prompt = (i: number): string => `prompt ${i} `.padEnd(1024, '.');
    expect(balancer.select(providers, invocation(prompt(0))).branch).toBe('cold');
    expect(balancer.select(providers, invocation(prompt(0))).branch).toBe('hit');
    balancer.select(providers, invocation(prompt(1)));
    // prompt 1 filled the provider's 16 blocks: prompt 0 is forgotten.
    expect(balancer.select(providers, invocation(prompt(0))).branch).toBe('cold');
    const index = new PrefixIndex();
    // Capacity 4: the first four blocks of the prompt stay (the shared part), the tail goes.
    index.record('a', [1, 2, 3, 4, 5, 6], 4);
    expect(index.size('a')).toBe(4);
    expect(index.match([1, 2, 3, 4, 5, 6], new Set(['a']))).toEqual(new Map([['a', 4]]));
    expect(index.match([5, 6], new Set(['a']))).toEqual(new Map());
    index.record('a', [7, 8], 4);
    expect(index.match([1, 2, 3, 4], new Set(['a']))).toEqual(new Map([['a', 2]]));
    index.retainOnly(new Set());
    expect(index.totalBlocks).toBe(0);
  });
});
