import { isClusterStrategy, type ClusterStrategy } from '../cluster/cluster.js';
import { BUILTIN_CLUSTERS } from '../cluster/builtins.js';
import { ExtensionRegistry, type BuiltinExtension } from '../common/extension-registry.js';
import { BUILTIN_FILTERS } from '../filter/builtins.js';
import { isFilter, type Filter } from '../filter/filter.js';
import { BUILTIN_BALANCERS } from '../loadbalance/builtins.js';
import { isLoadBalancer, type LoadBalancer } from '../loadbalance/loadbalance.js';
import { METRICS_FILTERS } from '../metrics/builtins.js';
import { BUILTIN_REGISTRIES } from '../registry/builtins.js';
import { isRegistry, type Registry } from '../registry/registry.js';
import { BUILTIN_SERIALIZERS } from '../serializer/builtins.js';
import { isSerializer, type Serializer } from '../serializer/serializer.js';
import { TRACE_FILTERS } from '../trace/builtins.js';
import { BUILTIN_TRANSPORTS } from '../transport/builtins.js';
import { isTransport, type Transport } from '../transport/transport.js';

/** The six extension points of DESIGN.md §3, each a named registry of implementations. */
export interface Extensions {
  /** Serializers, each registered with its wire id as `uniqueKey`. */
  readonly serializer: ExtensionRegistry<Serializer>;
  readonly transport: ExtensionRegistry<Transport>;
  /** Registries by URL scheme: `memory://…` uses the one named `memory`. */
  readonly registry: ExtensionRegistry<Registry>;
  readonly loadbalance: ExtensionRegistry<LoadBalancer>;
  readonly cluster: ExtensionRegistry<ClusterStrategy>;
  readonly filter: ExtensionRegistry<Filter>;
}

/** Empty registries for every extension point. */
export function emptyExtensions(): Extensions {
  return {
    serializer: new ExtensionRegistry<Serializer>('serializer', isSerializer, 'wire id'),
    transport: new ExtensionRegistry<Transport>('transport', isTransport),
    registry: new ExtensionRegistry<Registry>('registry', isRegistry),
    loadbalance: new ExtensionRegistry<LoadBalancer>('loadbalance', isLoadBalancer),
    cluster: new ExtensionRegistry<ClusterStrategy>('cluster', isClusterStrategy),
    filter: new ExtensionRegistry<Filter>('filter', isFilter),
  };
}

/**
 * New registries filled with every built-in implementation. Each extension folder lists its own
 * built-ins (`loadbalance/builtins.ts`, …); this only registers those lists, in order (the order
 * is the one error messages list the known names in).
 */
export function defaultExtensions(): Extensions {
  const ext = emptyExtensions();
  registerAll(ext.serializer, BUILTIN_SERIALIZERS);
  registerAll(ext.transport, BUILTIN_TRANSPORTS);
  registerAll(ext.registry, BUILTIN_REGISTRIES);
  registerAll(ext.loadbalance, BUILTIN_BALANCERS);
  registerAll(ext.cluster, BUILTIN_CLUSTERS);
  registerAll(ext.filter, BUILTIN_FILTERS);
  registerAll(ext.filter, METRICS_FILTERS);
  registerAll(ext.filter, TRACE_FILTERS);
  return ext;
}

function registerAll<T>(registry: ExtensionRegistry<T>, builtins: readonly BuiltinExtension<T>[]): void {
  for (const { name, factory, options } of builtins) registry.register(name, factory, options);
}

/** A copy of `ext` whose registries can be changed without touching the original. */
export function cloneExtensions(ext: Extensions): Extensions {
  return {
    serializer: ext.serializer.clone(),
    transport: ext.transport.clone(),
    registry: ext.registry.clone(),
    loadbalance: ext.loadbalance.clone(),
    cluster: ext.cluster.clone(),
    filter: ext.filter.clone(),
  };
}
