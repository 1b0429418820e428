import { environmentOption } from './environment.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { busyCalls, effectiveWeight, warmupOption, pickRandom, withRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'least-active';

/**
 * Fewest calls in flight from this consumer (Dubbo's leastactive); ties go to the higher
 * weight, then at random. A provider at its advertised concurrency cap is skipped while another
 * has room. Options: `{ warmupMs, clock, random }`.
 */
export const createLeastActiveBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  const warmupMs = warmupOption(TYPE_NAME, options);
  const env = environmentOption(TYPE_NAME, options);
  return {
    name: TYPE_NAME,
    select(all: readonly ProviderView[]) {
      if (all.length === 1) return { provider: all[0]!, policy: TYPE_NAME, branch: 'only' };
      const providers = withRoom(all);
      const now = env.now();
      let best: ProviderView[] = [];
      let bestActive = Infinity;
      let bestWeight = -1;
      for (const provider of providers) {
        const active = busyCalls(provider.stats);
        const weight = effectiveWeight(provider.instance, now, warmupMs);
        if (active < bestActive || (active === bestActive && weight > bestWeight)) {
          best = [provider];
          bestActive = active;
          bestWeight = weight;
        } else if (active === bestActive && weight === bestWeight) {
          best.push(provider);
        }
      }
      return { provider: pickRandom(best, env.random), policy: TYPE_NAME, branch: 'pick', detail: { inFlight: bestActive } };
    },
  };
};
