import { describe, expect, it } from 'vitest';
import type { Invocation } from '../../../src/call/invocation.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import type { ServiceInstance } from '../../../src/registry/registry.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { referenceHarness } from './reference-harness.js';

/*
 * Providers that lie in their records: eight workers alike, one of which claims figures it does
 * not have (or figures that are no numbers). Whatever the balancer, the liar is a worker like
 * the others and must draw about its share of the calls, not most of them.
 */
const HONEST = { slots: 8, prefillTokensPerSecond: 20_000, kvCapacityTokens: 400_000, decodeBaseMs: 8, decodePerSequenceMs: 0.5 };
const LIES: ReadonlyArray<[string, Partial<ServiceInstance> | Record<string, unknown>]> = [
  ['1e308 slots', { metadata: { ...HONEST, slots: 1e308 } }],
  ['Infinity slots', { metadata: { ...HONEST, slots: Infinity } }],
  ['NaN slots', { metadata: { ...HONEST, slots: Number.NaN } }],
  ['1e308 prefill tokens a second', { metadata: { ...HONEST, prefillTokensPerSecond: 1e308 } }],
  ["100x the fleet's prefill rate", { metadata: { ...HONEST, prefillTokensPerSecond: 2_000_000 } }],
  ['a negative prefill rate', { metadata: { ...HONEST, prefillTokensPerSecond: -5 } }],
  ['1e308 KV tokens', { metadata: { ...HONEST, kvCapacityTokens: 1e308 } }],
  ['a decode step of 0 ms', { metadata: { ...HONEST, decodeBaseMs: 0, decodePerSequenceMs: 0 } }],
  ['1e308 concurrent calls', { metadata: HONEST, maxConcurrentCalls: 1e308 }],
  ['an Infinity weight', { metadata: HONEST, weight: Infinity }],
];
const BALANCERS = ['random', 'round-robin', 'least-active', 'shortest-response', 'p2c', 'consistent-hash', 'prefix-affinity', 'slo'];

/** A worker serving 8 calls at once, 5 ms each; the rest wait their turn. */
function worker(): (invocation: Invocation) => Promise<unknown> {
  let busy = 0;
  const waiting: Array<() => void> = [];
  const next = (): void => {
    if (busy >= 8 || waiting.length === 0) return;
    busy++;
    const run = waiting.shift()!;
    setTimeout(() => {
      busy--;
      run();
      next();
    }, 5);
  };
  return (invocation) =>
    new Promise((resolve) => {
      waiting.push(() => resolve(invocation.request));
      next();
    });
}

describe.each(BALANCERS)('%s and a provider that lies in its record', (name) => {
  it.each(LIES)(
    'claiming %s, it draws about its share of the calls',
    async (_lie, record) => {
      const providers = [1, 2, 3, 4, 5, 6, 7, 8].map((port) =>
        providerRecord(port, port === 1 ? (record as Partial<ServiceInstance>) : { metadata: HONEST, maxConcurrentCalls: 32 }),
      );
      const h = await referenceHarness({ providers, parts: { balancer: defaultExtensions().loadbalance.create(name) } });
      await h.directory.ready();
      for (const port of [1, 2, 3, 4, 5, 6, 7, 8]) {
        h.pool.get('10.0.0.1', port, `10.0.0.1:${port}`);
        h.transport.connection(`10.0.0.1:${port}`)!.answer = worker();
      }
      const padding = 'x'.repeat(2000);
      const until = Date.now() + 3000;
      await Promise.all(
        Array.from({ length: 32 }, async (_, caller) => {
          for (let i = 0; i < 20 && Date.now() < until; i++) await h.reference.call('echo', 'hi', { routingKey: `${caller} ${i} ${padding}` });
        }),
      );
      const liar = h.routes.filter((route) => route.decision.provider.address === '10.0.0.1:1').length / h.routes.length;
      expect(h.routes.length).toBe(640);
      // A fair share is 1 in 8.
      expect(liar).toBeLessThan(0.2);
    },
    20_000,
  );
});
