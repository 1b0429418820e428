import { describe, expect, it } from 'vitest';
import { HashRing } from '../../../src/loadbalance/hash-ring.js';
import { view } from '../../helpers/lb.js';

describe('HashRing', () => {
  it('places one address once, however many records name it', () => {
    const ring = new HashRing(160);
    // 2,000 records that all point at one port (anyone who can write the registry can make them).
    const same = Array.from({ length: 2000 }, () => view(7));
    ring.prepare(same);
    expect(ring.size).toBe(160);
    // A walk meets that one owner and ends, whatever the visitor says.
    let visits = 0;
    expect(ring.walk(12345, () => (visits++, false))).toBeUndefined();
    expect(visits).toBe(1);
  });

  it('does not grow with churn: addresses gone are dropped once the ring holds twice the current list', () => {
    const ring = new HashRing(10);
    for (let generation = 0; generation < 50; generation++) {
      ring.prepare(Array.from({ length: 100 }, (_, i) => view(generation * 100 + i + 1)));
      expect(ring.size).toBeLessThanOrEqual(2 * 100 * 10);
    }
  });
});
