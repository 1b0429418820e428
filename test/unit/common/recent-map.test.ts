import { describe, expect, it } from 'vitest';
import { RecentMap } from '../../../src/common/recent-map.js';

describe('RecentMap', () => {
  it('holds at most two generations of entries, whatever the number of keys', () => {
    const map = new RecentMap<string, number>(1024);
    let most = 0;
    for (let i = 0; i < 100_000; i++) {
      map.set(`key-${i}`, i);
      most = Math.max(most, map.size);
    }
    expect(most).toBeLessThanOrEqual(2048);
    expect(map.get('key-99999')).toBe(99_999);
    expect(map.get('key-0')).toBeUndefined();
  });

  it('keeps an entry in use, with its identity, across any number of new keys', () => {
    const map = new RecentMap<string, object>(100);
    const hot = {};
    map.set('hot', hot);
    for (let i = 0; i < 100_000; i++) {
      map.set(`key-${i}`, {});
      // Used once per 100 new keys: always found again before its generation is dropped.
      if (i % 100 === 0) expect(map.get('hot')).toBe(hot);
    }
    expect(map.get('hot')).toBe(hot);
  });

  it('replaces a value in place without turning a full generation over', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1);
    map.set('b', 2);
    map.set('b', 3);
    expect(map.get('a')).toBe(1);
    expect(map.get('b')).toBe(3);
    expect(map.size).toBe(2);
  });
});
