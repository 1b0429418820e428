import { checkInt, checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Invocation } from '../call/invocation.js';
import { ENVIRONMENT_KEYS } from './environment.js';
import { hash32 } from './hash.js';
import { HashRing } from './hash-ring.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { hasRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'consistent-hash';

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018). Each provider
 * owns `virtualNodes` points on a 32-bit ring (160 by default, as Dubbo); a call goes to the
 * owner of the first point at or after its key's hash, so adding or removing one of N
 * providers moves about 1/N of the keys. With `loadFactor` c (1.25 by default) no provider
 * takes more than ceil(c x average) of this consumer's calls in flight: a key whose owner is
 * over that bound walks on to the next owner with room (branch `spill`).
 *
 * The key is the call's routing key (the `routingKey` call option, or the reference's
 * `routingKey` path/function), else the request serialised as JSON. Options: `{ virtualNodes,
 * loadFactor }`; the environment keys `clock` and `random` are accepted like every balancer's,
 * and unused (it needs neither).
 */
export const createConsistentHashBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('consistent-hash loadbalance options', options, ['virtualNodes', 'loadFactor', ...ENVIRONMENT_KEYS]);
  const virtualNodes = checkInt('consistent-hash loadbalance virtualNodes', options['virtualNodes'], 1, 10_000, 160);
  const loadFactor = options['loadFactor'] ?? 1.25;
  if (typeof loadFactor !== 'number' || !(loadFactor >= 1 && loadFactor <= 100)) {
    throw invalidOption('consistent-hash loadbalance loadFactor', loadFactor, 'a number from 1 to 100');
  }
  const ring = new HashRing(virtualNodes);

  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[], invocation: Invocation) {
      if (providers.length === 1) return { provider: providers[0]!, policy: TYPE_NAME, branch: 'only' };
      ring.prepare(providers);
      const key = routingKeyOf(invocation);
      let inFlight = 0;
      for (const provider of providers) inFlight += provider.stats.inFlight;
      const bound = Math.ceil((loadFactor * (inFlight + 1)) / providers.length);
      let walked = 0;
      let owner: ProviderView | undefined;
      const picked = ring.walk(hash32(key), (provider, first) => {
        if (first) owner = provider;
        else walked++;
        return provider.stats.inFlight < bound && hasRoom(provider);
      });
      if (picked !== undefined) return { provider: picked, policy: TYPE_NAME, branch: walked === 0 ? 'hit' : 'spill', detail: { bound, walked } };
      // Everyone is at the bound (it cannot happen with c >= 1 unless all are at capacity).
      return { provider: owner ?? providers[0]!, policy: TYPE_NAME, branch: 'fallback' };
    },
  };
};

/** The key a call is hashed by. */
export function routingKeyOf(invocation: Invocation): string {
  if (invocation.routingKey !== undefined) return invocation.routingKey;
  try {
    return JSON.stringify(invocation.request) ?? '';
  } catch {
    return String(invocation.request);
  }
}
