import { describe, expect, it } from 'vitest';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view } from '../../helpers/lb.js';

const create = (options: Record<string, unknown> = {}) => defaultExtensions().loadbalance.create({ type: 'consistent-hash', options });

describe('consistent-hash', () => {
  it('sends a key to the same provider every time', () => {
    const balancer = create();
    const providers = Array.from({ length: 5 }, (_, i) => view(i + 1));
    const first = balancer.select(providers, invocation('user-42')).provider;
    for (let i = 0; i < 100; i++) expect(balancer.select(providers, invocation('user-42')).provider).toBe(first);
  });

  it('moves about 1/N of the keys when one of N providers is added or removed', () => {
    const balancer = create();
    const ten = Array.from({ length: 10 }, (_, i) => view(i + 1));
    const eleven = [...ten, view(11)];
    const keys = Array.from({ length: 20_000 }, (_, i) => `key-${i}`);
    const before = keys.map((key) => balancer.select(ten, invocation(key)).provider.instance.port);
    const added = keys.map((key) => balancer.select(eleven, invocation(key)).provider.instance.port);
    const moved = before.filter((port, i) => port !== added[i]).length / keys.length;
    // Ideal: 1/11 = 9.1 % move, all of them to the new provider.
    expect(moved).toBeGreaterThan(0.05);
    expect(moved).toBeLessThan(0.14);
    expect(added.filter((port, i) => port !== before[i]).every((port) => port === 11)).toBe(true);
    const removed = keys.map((key) => balancer.select(ten.slice(1), invocation(key)).provider.instance.port);
    const movedOnRemoval = before.filter((port, i) => port !== removed[i]).length / keys.length;
    expect(movedOnRemoval).toBeGreaterThan(0.05);
    expect(movedOnRemoval).toBeLessThan(0.15);
    expect(before.filter((port, i) => port !== removed[i]).every((port) => port === 1)).toBe(true);
  });

  it('bounds the load: no provider takes more than ceil(c x average) of the calls in flight', () => {
    const balancer = create({ loadFactor: 1.25 });
    const providers = Array.from({ length: 8 }, (_, i) => view(i + 1));
    // A hot key: every call has it. Without the bound all 80 would land on one provider.
    const branches = new Set<string>();
    for (let call = 0; call < 80; call++) {
      const decision = balancer.select(providers, invocation('hot-key'));
      branches.add(decision.branch);
      (decision.provider.stats as (typeof providers)[number]['stats']).start(0);
      const total = providers.reduce((sum, provider) => sum + provider.stats.inFlight, 0);
      const bound = Math.ceil((1.25 * total) / providers.length);
      for (const provider of providers) expect(provider.stats.inFlight).toBeLessThanOrEqual(bound);
    }
    expect([...branches].sort()).toEqual(['hit', 'spill']);
  });

  it('hashes the request when no routing key is given', () => {
    const balancer = create();
    const providers = Array.from({ length: 5 }, (_, i) => view(i + 1));
    const a = balancer.select(providers, invocation(undefined, { user: 'ada' })).provider;
    for (let i = 0; i < 20; i++) expect(balancer.select(providers, invocation(undefined, { user: 'ada' })).provider).toBe(a);
  });

  it('rejects bad options naming the key', () => {
    expect(() => create({ loadFactor: 0.5 })).toThrow(/invalid consistent-hash loadbalance loadFactor: 0\.5 \(allowed: a number from 1 to 100\)/);
    expect(() => create({ virtualNodes: 0 })).toThrow(/virtualNodes: 0/);
  });
});
