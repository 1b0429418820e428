import { describe, expect, it } from 'vitest';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { invocation, view } from '../../helpers/lb.js';

/*
 * Incast: 8 equal providers whose load snapshots are 500 ms old (fresh enough to be trusted,
 * so they say "idle"), and 64 calls arriving within 10 ms, before any answer or new snapshot.
 * Only the consumer's own "sent since the snapshot" counts tell the providers apart.
 */
describe.each(['p2c', 'prefix-affinity', 'slo'])('%s under incast', (name) => {
  it('gives no provider more than 12 of 64 simultaneous calls', () => {
    for (let round = 0; round < 20; round++) {
      const balancer = defaultExtensions().loadbalance.create(name);
      const snapshotAt = Date.now() - 500;
      const providers = Array.from({ length: 8 }, (_, i) =>
        view(i + 1, {
          metadata: { slots: 8 },
          load: {
            timestamp: snapshotAt,
            receivedAt: snapshotAt,
            running: 2,
            waiting: 0,
            waitingUncachedTokens: 0,
            kvUsage: 0.2,
            tokensPerSecond: 500,
            draining: false,
          },
        }),
      );
      const counts = new Map<number, number>();
      for (let call = 0; call < 64; call++) {
        // Prompts share a few system prompts, as chat traffic does.
        const prompt = `${'system prompt '.repeat(20)}${call % 4} user question ${call} `.repeat(3);
        const chosen = balancer.select(providers, invocation(prompt)).provider;
        (chosen.stats as (typeof providers)[number]['stats']).start(Math.ceil(prompt.length / 4));
        counts.set(chosen.instance.port, (counts.get(chosen.instance.port) ?? 0) + 1);
      }
      expect(Math.max(...counts.values()), `round ${round}: ${JSON.stringify([...counts])}`).toBeLessThanOrEqual(12);
    }
  });
});
