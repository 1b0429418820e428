import { checkInt, checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Invocation } from '../call/invocation.js';
import { ENVIRONMENT_KEYS } from './environment.js';
import { hash32 } from './hash.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { hasRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'consistent-hash';

interface Ring {
  readonly signature: string;
  readonly points: Uint32Array;
  /** Index into `providers` of each point's owner. */
  readonly owners: Uint16Array;
  readonly providers: readonly ProviderView[];
}

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
  let ring: Ring | undefined;

  const ringFor = (providers: readonly ProviderView[]): Ring => {
    const signature = providers.map((provider) => provider.address).join(',');
    if (ring?.signature === signature) return ring;
    const entries: Array<[number, number]> = [];
    providers.forEach((provider, index) => {
      for (let i = 0; i < virtualNodes; i++) entries.push([hash32(`${provider.address}#${i}`), index]);
    });
    entries.sort((a, b) => a[0] - b[0]);
    ring = {
      signature,
      points: Uint32Array.from(entries, ([point]) => point),
      owners: Uint16Array.from(entries, ([, owner]) => owner),
      providers,
    };
    return ring;
  };

  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[], invocation: Invocation) {
      if (providers.length === 1) return { provider: providers[0]!, policy: TYPE_NAME, branch: 'only' };
      const current = ringFor(providers);
      const key = routingKeyOf(invocation);
      const start = firstAtOrAfter(current.points, hash32(key));
      let inFlight = 0;
      for (const provider of current.providers) inFlight += provider.stats.inFlight;
      const bound = Math.ceil((loadFactor * (inFlight + 1)) / current.providers.length);
      const tried = new Set<number>();
      for (let step = 0; step < current.points.length && tried.size < current.providers.length; step++) {
        const owner = current.owners[(start + step) % current.points.length]!;
        if (tried.has(owner)) continue;
        tried.add(owner);
        const provider = current.providers[owner]!;
        if (provider.stats.inFlight < bound && hasRoom(provider)) {
          return { provider, policy: TYPE_NAME, branch: tried.size === 1 ? 'hit' : 'spill', detail: { bound, walked: tried.size - 1 } };
        }
      }
      // Everyone is at the bound (it cannot happen with c >= 1 unless all are at capacity).
      return { provider: current.providers[current.owners[start % current.points.length]!]!, policy: TYPE_NAME, branch: 'fallback' };
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

function firstAtOrAfter(points: Uint32Array, value: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low === points.length ? 0 : low;
}
