import type { ExtensionFactory, LoadBalancer, ProviderView, ShuttlePlugin } from 'shuttle-rpc/spi';

/** The name the balancer is registered under. */
export const TYPE_NAME = 'zone-affinity';

/**
 * A load balancer shipped as a plugin: prefer providers whose registry metadata `zone` equals
 * the consumer's zone (no cross-zone traffic, no cross-zone latency), least loaded first; fall
 * back to every provider when the zone has none. Options: `{ zone: string }`.
 */
const createZoneAffinity: ExtensionFactory<LoadBalancer> = (options) => {
  const zone = options['zone'];
  if (typeof zone !== 'string' || zone.length === 0) {
    throw new TypeError(`zone-affinity: invalid option zone: ${JSON.stringify(zone)} (allowed: a non-empty zone name)`);
  }
  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[]) {
      const local = providers.filter((provider) => provider.instance.metadata['zone'] === zone);
      const pool = local.length > 0 ? local : providers;
      // Fewest calls in flight from this consumer; ties broken at random so load spreads.
      let best: ProviderView[] = [];
      for (const provider of pool) {
        if (best.length === 0 || provider.stats.inFlight < best[0]!.stats.inFlight) best = [provider];
        else if (provider.stats.inFlight === best[0]!.stats.inFlight) best.push(provider);
      }
      const provider = best[Math.floor(Math.random() * best.length)]!;
      // The branch says whether the consumer's zone had a provider at all.
      return { provider, policy: TYPE_NAME, branch: local.length > 0 ? 'hit' : 'fallback' };
    },
  };
};

/** The plugin: load it with `plugins: ['…/zone-affinity.js']` or package.json `shuttle.plugins`. */
const plugin: ShuttlePlugin = {
  name: 'zone-affinity-plugin',
  setup(extensions) {
    extensions.loadbalance.register(TYPE_NAME, createZoneAffinity);
  },
};
export default plugin;
