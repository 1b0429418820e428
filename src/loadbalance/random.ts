import { environmentOption } from './environment.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { effectiveWeight, warmupOption } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'random';

/**
 * Weighted random (Dubbo's default): each provider is picked with probability weight / total,
 * weights ramped up over `warmupMs` (default 10 min) after a provider starts. Options:
 * `{ warmupMs }`.
 */
export const createRandomBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  const warmupMs = warmupOption(TYPE_NAME, options);
  const env = environmentOption(TYPE_NAME, options);
  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[]) {
      if (providers.length === 1) return { provider: providers[0]!, policy: TYPE_NAME, branch: 'only' };
      const now = env.now();
      let total = 0;
      const weights = providers.map((provider) => {
        const weight = effectiveWeight(provider.instance, now, warmupMs);
        total += weight;
        return weight;
      });
      let point = env.random() * total;
      for (let i = 0; i < providers.length; i++) {
        point -= weights[i]!;
        if (point < 0) return { provider: providers[i]!, policy: TYPE_NAME, branch: 'pick' };
      }
      return { provider: providers[providers.length - 1]!, policy: TYPE_NAME, branch: 'pick' };
    },
  };
};
