import { describe, expect, it } from 'vitest';
import { BlockLru } from '../../../src/loadbalance/block-lru.js';

/** A Map-based LRU with the same contract, as the reference. */
class ReferenceLru {
  readonly entries = new Map<number, true>();
  constructor(readonly capacity: number) {}
  touch(hash: number): void {
    this.entries.delete(hash);
    this.entries.set(hash, true);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as number);
  }
}

describe('BlockLru', () => {
  it('behaves exactly like a reference LRU over 200k random touches, through growth and eviction', () => {
    let seed = 7;
    const random = (): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed;
    };
    for (const capacity of [1, 3, 100, 5000]) {
      const lru = new BlockLru(capacity, 2);
      const reference = new ReferenceLru(capacity);
      // Keys from a small range collide in the table and repeat often.
      const range = capacity * 3 + 7;
      for (let i = 0; i < 200_000 / (capacity > 100 ? 1 : 4); i++) {
        const hash = (random() % range) * 65_537 & 0x3fffffff;
        lru.touch(hash);
        reference.touch(hash);
        if (i % 997 === 0) {
          expect(lru.size).toBe(reference.entries.size);
          // Compared in a plain loop and asserted once: a million expect() calls take 20 s.
          const wrong: string[] = [];
          for (let probe = 0; probe < range; probe += 3) {
            const key = (probe * 65_537) & 0x3fffffff;
            if (lru.has(key) !== reference.entries.has(key)) wrong.push(`capacity ${capacity}, step ${i}, key ${key}: has ${lru.has(key)}`);
          }
          expect(wrong).toEqual([]);
        }
      }
    }
  });

  it('never holds more than its capacity', () => {
    const lru = new BlockLru(10);
    for (let i = 0; i < 1000; i++) lru.touch(i);
    expect(lru.size).toBe(10);
    expect(lru.has(999)).toBe(true);
    expect(lru.has(989)).toBe(false);
  });
});
