import { environmentOption } from './environment.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { busyCalls, effectiveWeight, warmupOption, pickRandom, withRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'least-active';

/**
 * Fewest calls in flight from this consumer (Dubbo's leastactive); ties are drawn at random in
 * proportion to weight, as Dubbo draws them. Taking the highest weight outright made every tie
 * go to one provider while weights ramp up: warm-up weights are proportional to uptime, so of a
 * fleet started seconds apart the oldest won every tie for the whole warm-up, which at low
 * concurrency (every provider idle at each pick) was every call. A provider at its advertised
 * concurrency cap is skipped while another has room. Options: `{ warmupMs, clock, random }`.
 */
export const createLeastActiveBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  const warmupMs = warmupOption(TYPE_NAME, options);
  const env = environmentOption(TYPE_NAME, options);
  return {
    name: TYPE_NAME,
    select(all: readonly ProviderView[]) {
      if (all.length === 1) return { provider: all[0]!, policy: TYPE_NAME, branch: 'only' };
      const providers = withRoom(all);
      let best: ProviderView[] = [];
      let bestActive = Infinity;
      for (const provider of providers) {
        const active = busyCalls(provider.stats);
        if (active < bestActive) {
          best = [provider];
          bestActive = active;
        } else if (active === bestActive) best.push(provider);
      }
      // One draw per call whether or not there is a tie, so a seeded run keeps its sequence.
      const provider = pickWeighted(best, env.now(), warmupMs, env.random);
      return { provider, policy: TYPE_NAME, branch: 'pick', detail: { inFlight: bestActive } };
    },
  };
};

/** One of `providers`, drawn with `random` (called exactly once) in proportion to its effective weight (uniformly when all weigh 0). */
function pickWeighted(providers: readonly ProviderView[], now: number, warmupMs: number, random: () => number): ProviderView {
  if (providers.length === 1) {
    random();
    return providers[0]!;
  }
  const weights = providers.map((provider) => effectiveWeight(provider.instance, now, warmupMs));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  if (!(total > 0)) return pickRandom(providers, random);
  let point = random() * total;
  for (let i = 0; i < providers.length; i++) {
    point -= weights[i]!;
    if (point < 0) return providers[i]!;
  }
  return providers[providers.length - 1]!;
}
