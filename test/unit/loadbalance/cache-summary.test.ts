import { describe, expect, it } from 'vitest';
import { isLandmark, summaryMatch } from '../../../src/loadbalance/cache-summary.js';
import { prefixBlockHashes } from '../../../src/loadbalance/hash.js';
import { MAX_CACHE_SUMMARY, parseLoad } from '../../../src/registry/registry.js';
import { SimEngine, VirtualClock } from '../../../src/sim/sim.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view } from '../../helpers/lb.js';

const base = { timestamp: 1, running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining: false };

describe('cache summary', () => {
  it('marks landmark lengths: 1 to 8, then three significant bits (within 25 %)', () => {
    const marks = Array.from({ length: 64 }, (_, i) => i + 1).filter(isLandmark);
    expect(marks).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64]);
  });

  it('finds the longest held landmark prefix of a prompt', () => {
    const hashes = prefixBlockHashes('x'.repeat(64 * 100), 64, 4096);
    expect(summaryMatch(hashes, new Set([hashes[0]!, hashes[39]!]))).toBe(40);
    expect(summaryMatch(hashes, new Set([hashes[40]!]))).toBe(0);
    expect(summaryMatch(hashes, new Set())).toBe(0);
  });

  it('travels in a load snapshot when well-formed and is dropped (not the snapshot) otherwise', () => {
    expect(parseLoad({ ...base, cachedPrefixes: [1, 2, 3] })?.cachedPrefixes).toEqual([1, 2, 3]);
    for (const bad of [[1.5], [-1], [2 ** 30], 'abc', new Array(MAX_CACHE_SUMMARY + 1).fill(1)]) {
      const parsed = parseLoad({ ...base, cachedPrefixes: bad });
      expect(parsed).toBeDefined();
      expect(parsed!.cachedPrefixes).toBeUndefined();
    }
  });

  it('is published by the simulated engine, and lets a consumer that never routed there find the prefix', async () => {
    const clock = new VirtualClock(16);
    const engine = new SimEngine({ slots: 4 }, clock);
    const prompt = `${'shared system prompt '.repeat(80)} question`;
    const run = (async () => {
      for await (const _ of engine.generate({ promptTokens: Math.ceil(prompt.length / 4), promptBlocks: prefixBlockHashes(prompt, 64, 4096), maxTokens: 2 }));
    })();
    await clock.run();
    await run;
    const summary = engine.load().cachedPrefixes;
    expect(summary.length).toBeGreaterThan(0);
    expect(summary.length).toBeLessThanOrEqual(MAX_CACHE_SUMMARY);
    // A fresh consumer: no guesses of its own, only the workers' published summaries.
    for (const type of ['slo', 'prefix-affinity']) {
      const balancer = defaultExtensions().loadbalance.create({ type, options: { clock: { now: () => 0 } } });
      const holder = view(1, { metadata: { slots: 4 }, load: { ...base, timestamp: 0, receivedAt: 0, cachedPrefixes: summary } });
      const other = view(2, { metadata: { slots: 4 }, load: { ...base, timestamp: 0, receivedAt: 0 } });
      const decision = balancer.select([other, holder], invocation(`${'shared system prompt '.repeat(80)} another question`));
      expect(decision.provider, type).toBe(holder);
      expect(decision.branch, type).toBe('hit');
    }
  });
});
