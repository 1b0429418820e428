import { describe, expect, it } from 'vitest';
import { ProviderHealth } from '../../../src/cluster/provider-health.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { referenceHarness } from './reference-harness.js';

/*
 * Past the ejection cap (maxPercent), the providers that are out but picked again so the last
 * healthy ones are not overloaded must get their share of the calls and no more, whatever the
 * balancer: a provider that fails every call at once frees its place at once and looks the
 * idlest of all to a balancer that counts load.
 */
const BALANCERS = ['random', 'round-robin', 'least-active', 'shortest-response', 'p2c', 'consistent-hash', 'prefix-affinity', 'slo'];
const FAILING = ['10.0.0.1:2', '10.0.0.1:3', '10.0.0.1:4'];

describe.each(BALANCERS)('%s past the ejection cap', (name) => {
  it('sends the failing providers picked again their share (1 in 2 of 4 with a 50 % cap), not most calls', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 2, baseMs: 60_000, maxMs: 120_000, maxPercent: 50 });
    const balancer = defaultExtensions().loadbalance.create(name);
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2), providerRecord(3), providerRecord(4)],
      parts: { health, balancer },
    });
    await h.directory.ready();
    for (const address of FAILING) {
      const [host, port] = address.split(':');
      h.pool.get(host!, Number(port), address);
      // Broken for `echo`; its other methods answer at once (as a health check would).
      h.transport.connection(address)!.answer = (invocation) =>
        invocation.method === 'echo' ? Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'broken')) : Promise.resolve(invocation.request);
    }
    h.pool.get('10.0.0.1', 1, '10.0.0.1:1');
    h.transport.connection('10.0.0.1:1')!.answer = (invocation) => new Promise((resolve) => setTimeout(() => resolve(invocation.request), 10));
    for (let i = 0; i < 400; i++) await h.reference.call('write', i, undefined);
    // Three of four ejected: over the 50 % cap, one of them is picked again with the healthy one.
    for (const address of FAILING)
      for (let i = 0; i < 2; i++) await health.run(address, () => Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'x'))).catch(() => {});
    expect(FAILING.every((address) => health.ejection(address).ejected)).toBe(true);
    let calls = 0;
    let failed = 0;
    const until = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 12 }, async (_, worker) => {
        for (let i = 0; i < 100 && Date.now() < until; i++) {
          calls++;
          await h.reference.call('echo', `request ${worker}-${i}`, { routingKey: `a prompt of its own ${worker}-${i}` }).catch(() => failed++);
        }
      }),
    );
    health.close();
    expect(calls).toBe(1200);
    // Round-robin's share: half. Within a few points for the random ones.
    expect(failed / calls).toBeLessThan(0.58);
  }, 20_000);
});
