import { describe, expect, it } from 'vitest';
import type { Invocation } from '../../../src/call/invocation.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { referenceHarness } from './reference-harness.js';

/*
 * slo on a service that is not an LLM: unary calls only, no prompt, no figures advertised. A
 * unary call's answer is its end, so what slo learns of how long a call holds a worker must
 * come from the whole call; otherwise its queue term is 0 and it ignores what is ahead.
 */
/** A worker serving `concurrency` calls at once, `ms` each; the rest wait their turn. */
function worker(ms: number, concurrency: number): (invocation: Invocation) => Promise<unknown> {
  let busy = 0;
  const waiting: Array<() => void> = [];
  const next = (): void => {
    if (busy >= concurrency || waiting.length === 0) return;
    busy++;
    const run = waiting.shift()!;
    setTimeout(() => {
      busy--;
      run();
      next();
    }, ms);
  };
  return (invocation) =>
    new Promise((resolve) => {
      waiting.push(() => resolve(invocation.request));
      next();
    });
}

/** Twelve callers in a loop for 2 s on one slow worker (40 ms) and three fast ones (5 ms), two calls at once each. */
async function run(balancer: string): Promise<{ calls: number; share: (port: number) => number }> {
  const h = await referenceHarness({
    providers: [providerRecord(1), providerRecord(2), providerRecord(3), providerRecord(4)],
    parts: { balancer: defaultExtensions().loadbalance.create(balancer) },
  });
  await h.directory.ready();
  for (const port of [1, 2, 3, 4]) {
    h.pool.get('10.0.0.1', port, `10.0.0.1:${port}`);
    h.transport.connection(`10.0.0.1:${port}`)!.answer = worker(port === 1 ? 40 : 5, 2);
  }
  const until = Date.now() + 2000;
  await Promise.all(
    Array.from({ length: 12 }, async (_, caller) => {
      for (let i = 0; i < 5000 && Date.now() < until; i++) await h.reference.call('echo', `${caller}-${i}`, undefined);
    }),
  );
  const to = new Map<string, number>();
  for (const route of h.routes) to.set(route.decision.provider.address, (to.get(route.decision.provider.address) ?? 0) + 1);
  return { calls: h.routes.length, share: (port) => (to.get(`10.0.0.1:${port}`) ?? 0) / h.routes.length };
}

describe('slo on unary calls', () => {
  it('sends one slow worker of four less than its share, and spreads the rest by what is ahead at each', async () => {
    const slo = await run('slo');
    const leastActive = await run('least-active');
    expect(slo.share(1)).toBeLessThan(0.1);
    // Priced by what is ahead at each worker, the calls keep the fast ones as busy as
    // least-active does. With a unary call's time in a slot learned as 0 the queue term was 0:
    // slo piled the calls on one or two fast workers and completed 40 % of least-active's calls.
    expect(slo.calls / leastActive.calls).toBeGreaterThan(0.75);
    for (const port of [2, 3, 4]) expect(slo.share(port), `port ${port}`).toBeGreaterThan(0.25);
  }, 20_000);
});
