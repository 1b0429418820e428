import { describe, expect, it } from 'vitest';
import { PrefixIndex } from '../../../src/loadbalance/prefix-index.js';

/**
 * The index's contract in its plainest form: per provider, a least-recently-used set of block
 * hashes, a prompt's blocks touched last to first, a provider's match counted block by block.
 */
class ReferenceIndex {
  readonly providers = new Map<string, { capacity: number; blocks: Map<number, true> }>();

  record(address: string, hashes: readonly number[], capacity: number): void {
    let share = this.providers.get(address);
    if (share === undefined || share.capacity !== capacity) {
      share = { capacity, blocks: new Map() };
      this.providers.set(address, share);
    }
    for (let i = hashes.length - 1; i >= 0; i--) {
      share.blocks.delete(hashes[i]!);
      share.blocks.set(hashes[i]!, true);
      if (share.blocks.size > capacity) share.blocks.delete(share.blocks.keys().next().value as number);
    }
  }

  matchOne(address: string, hashes: readonly number[]): number {
    const blocks = this.providers.get(address)?.blocks;
    let matched = 0;
    while (blocks !== undefined && matched < hashes.length && blocks.has(hashes[matched]!)) matched++;
    return matched;
  }
}

describe('PrefixIndex', () => {
  it('answers exactly as a per-provider LRU of blocks, through splits, evictions, capacity changes and departures', () => {
    let seed = 5;
    const random = (): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed / 2 ** 32;
    };
    // Chain hashes without collisions: every distinct prefix of tokens gets its own number.
    const ids = new Map<string, number>();
    const chain = (tokens: readonly number[]): number[] =>
      tokens.map((_, i) => {
        const key = tokens.slice(0, i + 1).join(',');
        if (!ids.has(key)) ids.set(key, ids.size + 1);
        return ids.get(key)!;
      });
    // Prompts: one of a few shared openings, maybe a shared middle, a unique tail, or a cut.
    const openings = Array.from({ length: 6 }, (_, i) => Array.from({ length: 2 + (i % 4) * 3 }, (_, j) => 1000 * i + j));
    const prompt = (step: number): number[] => {
      const tokens = [...openings[Math.floor(random() * random() * openings.length)]!];
      if (random() < 0.5) tokens.push(...Array.from({ length: Math.floor(random() * 4) }, (_, j) => 100 + j + Math.floor(random() * 2)));
      if (random() < 0.7) tokens.push(...Array.from({ length: Math.floor(random() * 6) }, (_, j) => 1_000_000 * (step + 1) + j));
      return random() < 0.2 ? tokens.slice(0, Math.floor(random() * (tokens.length + 1))) : tokens;
    };
    const addresses = ['a', 'b', 'c', 'd'];
    let candidates = addresses.map((address) => ({ address }));
    for (const capacity of [1, 4, 12, 40]) {
      const index = new PrefixIndex();
      const reference = new ReferenceIndex();
      const wrong: string[] = [];
      for (let step = 0; step < 3000; step++) {
        const query = chain(prompt(step));
        // Usually the same candidate objects as last time, sometimes new ones in another order.
        if (random() < 0.1) candidates = addresses.map((address) => ({ address })).sort(() => random() - 0.5);
        const each = index.matchEach(query, candidates);
        candidates.forEach(({ address }, i) => {
          const expected = reference.matchOne(address, query);
          if (index.matchOne(address, query) !== expected || index.matched(address, query) !== expected || each[i] !== expected) {
            wrong.push(
              `capacity ${capacity}, step ${step}, ${address}: ${index.matchOne(address, query)} / ${index.matched(address, query)} / ${each[i]}, expected ${expected}`,
            );
          }
        });
        const address = addresses[Math.floor(random() * addresses.length)]!;
        const cap = random() < 0.01 ? capacity + 1 : capacity;
        index.record(address, query, cap);
        reference.record(address, query, cap);
        for (const each of addresses) {
          const size = reference.providers.get(each)?.blocks.size ?? 0;
          if (index.size(each) !== size) wrong.push(`capacity ${capacity}, step ${step}, ${each}: size ${index.size(each)}, expected ${size}`);
        }
        if (random() < 0.003) {
          const live = new Set(addresses.filter(() => random() < 0.6));
          index.retainOnly(live);
          for (const each of reference.providers.keys()) if (!live.has(each)) reference.providers.delete(each);
        }
      }
      // Compared in a loop and asserted once: thousands of expect() calls are slow.
      expect(wrong.slice(0, 5)).toEqual([]);
    }
  });

  it('answers a lookup again after a change, not from its cache', () => {
    const index = new PrefixIndex();
    const hashes = [1, 2, 3];
    expect(index.matched('a', hashes)).toBe(0);
    index.record('a', hashes, 10);
    expect(index.matched('a', hashes)).toBe(3);
    index.record('a', [4, 5, 6, 7, 8, 9, 10, 11], 10);
    expect(index.matched('a', hashes)).toBe(2);
    index.retainOnly(new Set());
    expect(index.matched('a', hashes)).toBe(0);
    expect(index.totalBlocks).toBe(0);
  });
});
