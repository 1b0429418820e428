import { environmentOption } from './environment.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { effectiveWeight, warmupOption } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'round-robin';

/**
 * Smooth weighted round-robin (nginx): every pick adds each provider's weight to its current
 * value, takes the largest, and subtracts the total from it — weights 5:1:1 give a a b a c a a,
 * never a burst of five in a row. Weights ramp up over `warmupMs`. State is per provider
 * address and forgotten when a provider leaves. Options: `{ warmupMs, clock, random }`.
 */
export const createRoundRobinBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  const warmupMs = warmupOption(TYPE_NAME, options);
  const env = environmentOption(TYPE_NAME, options);
  const current = new Map<string, number>();
  let seenLists = 0;
  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[]) {
      if (providers.length === 1) return { provider: providers[0]!, policy: TYPE_NAME, branch: 'only' };
      const now = env.now();
      let total = 0;
      let best: ProviderView | undefined;
      let bestValue = -Infinity;
      for (const provider of providers) {
        const weight = effectiveWeight(provider.instance, now, warmupMs);
        const value = (current.get(provider.address) ?? 0) + weight;
        current.set(provider.address, value);
        total += weight;
        if (value > bestValue) {
          bestValue = value;
          best = provider;
        }
      }
      current.set(best!.address, bestValue - total);
      // Forget providers that left, now and then (cheaply bounding the map).
      if (++seenLists % 1024 === 0 && current.size > providers.length) {
        const live = new Set(providers.map((provider) => provider.address));
        for (const address of current.keys()) if (!live.has(address)) current.delete(address);
      }
      return { provider: best!, policy: TYPE_NAME, branch: 'pick' };
    },
  };
};
