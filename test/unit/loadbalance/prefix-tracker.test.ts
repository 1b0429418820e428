import { describe, expect, it } from 'vitest';
import { MAX_CAPACITY_BLOCKS, PrefixTracker } from '../../../src/loadbalance/prefix-tracker.js';
import type { ProviderView } from '../../../src/loadbalance/loadbalance.js';
import { invocation } from '../../helpers/lb.js';

describe('PrefixTracker', () => {
  it('hashes a call’s prompt once: a retry picks with the same hashes even after other calls’ picks', () => {
    const tracker = PrefixTracker.fromOptions('prefix-affinity', {});
    const call = invocation('system prompt, then a question. '.repeat(40));
    const first = tracker.hashesOf(call);
    expect(first.length).toBe(20);
    for (let i = 0; i < 100; i++) tracker.hashesOf(invocation(`another call ${i} `.repeat(40)));
    expect(tracker.hashesOf(call)).toBe(first);
    // A new call with the same prompt is hashed again (its own invocation), to the same values.
    expect(tracker.hashesOf(invocation(call.routingKey))).toEqual(first);
  });

  it('keeps at most 2^20 blocks for a provider, whatever KV capacity it advertises', () => {
    const tracker = PrefixTracker.fromOptions('prefix-affinity', {});
    const advertising = (kvCapacityTokens: unknown) => ({ instance: { metadata: { kvCapacityTokens } } }) as unknown as ProviderView;
    expect(tracker.capacityBlocks(advertising(160_000))).toBe(10_000);
    expect(tracker.capacityBlocks(advertising(1e308))).toBe(MAX_CAPACITY_BLOCKS);
    expect(tracker.capacityBlocks(advertising(Number.POSITIVE_INFINITY))).toBe(MAX_CAPACITY_BLOCKS);
    expect(tracker.capacityBlocks(advertising(Number.NaN))).toBe(8192);
  });
});
