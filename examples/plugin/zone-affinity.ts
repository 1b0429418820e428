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
    select(providers: readonly ProviderView[]): ProviderView {
      const local = providers.filter((provider) => provider.instance.metadata['zone'] === zone);
      const pool = local.length > 0 ? local : providers;
      // Fewest calls in flight from this consumer; ties broken at random so load spreads.
      let best: ProviderView[] = [];
      for (const provider of pool) {
        if (best.length === 0 || provider.inFlight < best[0]!.inFlight) best = [provider];
        else if (provider.inFlight === best[0]!.inFlight) best.push(provider);
      }
      return best[Math.floor(Math.random() * best.length)]!;
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
