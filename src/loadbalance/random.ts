import { checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'random';

/** Weighted random (Dubbo's default): each provider is picked with probability weight / total. */
export const createRandomBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('random loadbalance options', options, []);
  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[]): ProviderView {
      const first = providers[0]!;
      if (providers.length === 1) return first;
      let total = 0;
      let uniform = true;
      for (const provider of providers) {
        total += provider.instance.weight;
        if (provider.instance.weight !== first.instance.weight) uniform = false;
      }
      if (uniform) return providers[Math.floor(Math.random() * providers.length)]!;
      let point = Math.random() * total;
      for (const provider of providers) {
        point -= provider.instance.weight;
        if (point < 0) return provider;
      }
      return providers[providers.length - 1]!;
    },
  };
};
