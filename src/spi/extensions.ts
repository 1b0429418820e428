import { createBroadcastCluster, TYPE_NAME as BROADCAST } from '../cluster/broadcast.js';
import { createFailbackCluster, TYPE_NAME as FAILBACK } from '../cluster/failback.js';
import { createFailfastCluster, TYPE_NAME as FAILFAST } from '../cluster/failfast.js';
import { createFailoverCluster, TYPE_NAME as FAILOVER } from '../cluster/failover.js';
import { createFailsafeCluster, TYPE_NAME as FAILSAFE } from '../cluster/failsafe.js';
import { createForkingCluster, TYPE_NAME as FORKING } from '../cluster/forking.js';
import { isClusterStrategy, type ClusterStrategy } from '../cluster/cluster.js';
import { createAccessLogFilter, TYPE_NAME as ACCESS_LOG } from '../filter/access-log.js';
import { createConcurrencyLimitFilter, TYPE_NAME as CONCURRENCY_LIMIT } from '../filter/concurrency-limit.js';
import { isFilter, type Filter } from '../filter/filter.js';
import { createMetricsFilter, TYPE_NAME as METRICS } from '../metrics/filter.js';
import { createTraceContextFilter, TYPE_NAME as TRACE_CONTEXT } from '../trace/filter.js';
import { createOpenTelemetryFilter, TYPE_NAME as OPENTELEMETRY } from '../trace/opentelemetry.js';
import { createTokenFilter, TYPE_NAME as TOKEN } from '../filter/token.js';
import { isLoadBalancer, type LoadBalancer } from '../loadbalance/loadbalance.js';
import { createConsistentHashBalancer, TYPE_NAME as CONSISTENT_HASH } from '../loadbalance/consistent-hash.js';
import { createLeastActiveBalancer, TYPE_NAME as LEAST_ACTIVE } from '../loadbalance/least-active.js';
import { createP2cBalancer, TYPE_NAME as P2C } from '../loadbalance/p2c.js';
import { createPrefixAffinityBalancer, TYPE_NAME as PREFIX_AFFINITY } from '../loadbalance/prefix-affinity.js';
import { createSloBalancer, TYPE_NAME as SLO } from '../loadbalance/slo.js';
import { createRandomBalancer, TYPE_NAME as RANDOM } from '../loadbalance/random.js';
import { createRoundRobinBalancer, TYPE_NAME as ROUND_ROBIN } from '../loadbalance/round-robin.js';
import { createShortestResponseBalancer, TYPE_NAME as SHORTEST_RESPONSE } from '../loadbalance/shortest-response.js';
import { createDirectRegistry, TYPE_NAME as DIRECT } from '../registry/direct.js';
import { createEtcdRegistry, TYPE_NAME as ETCD } from '../registry/etcd/etcd.js';
import { createFileRegistry, TYPE_NAME as FILE } from '../registry/file/file.js';
import { createMemoryRegistry, TYPE_NAME as MEMORY } from '../registry/memory.js';
import { isRegistry, type Registry } from '../registry/registry.js';
import { createJsonSerializer, TYPE_NAME as JSON_NAME } from '../serializer/json.js';
import { createMsgpackSerializer, TYPE_NAME as MSGPACK } from '../serializer/msgpack.js';
import { createProtobufSerializer, TYPE_NAME as PROTOBUF } from '../serializer/protobuf.js';
import { SerializerId, isSerializer, type Serializer } from '../serializer/serializer.js';
import { createGrpcTransport, TYPE_NAME as GRPC } from '../transport/grpc/grpc.js';
import { createTcpTransport, TYPE_NAME as TCP } from '../transport/tcp/tcp.js';
import { isTransport, type Transport } from '../transport/transport.js';
import { ExtensionRegistry } from './extension-registry.js';

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

/** New registries filled with every built-in implementation. */
export function defaultExtensions(): Extensions {
  const ext = emptyExtensions();
  ext.serializer.register(MSGPACK, createMsgpackSerializer, { uniqueKey: SerializerId.MSGPACK });
  ext.serializer.register(JSON_NAME, createJsonSerializer, { uniqueKey: SerializerId.JSON });
  ext.serializer.register(PROTOBUF, createProtobufSerializer, { uniqueKey: SerializerId.PROTOBUF });
  ext.transport.register(TCP, createTcpTransport);
  ext.transport.register(GRPC, createGrpcTransport);
  ext.registry.register(MEMORY, createMemoryRegistry);
  ext.registry.register(DIRECT, createDirectRegistry);
  ext.registry.register(FILE, createFileRegistry);
  ext.registry.register(ETCD, createEtcdRegistry);
  ext.loadbalance.register(RANDOM, createRandomBalancer);
  ext.loadbalance.register(ROUND_ROBIN, createRoundRobinBalancer);
  ext.loadbalance.register(LEAST_ACTIVE, createLeastActiveBalancer);
  ext.loadbalance.register(SHORTEST_RESPONSE, createShortestResponseBalancer);
  ext.loadbalance.register(P2C, createP2cBalancer);
  ext.loadbalance.register(CONSISTENT_HASH, createConsistentHashBalancer);
  ext.loadbalance.register(PREFIX_AFFINITY, createPrefixAffinityBalancer);
  ext.loadbalance.register(SLO, createSloBalancer);
  ext.cluster.register(FAILOVER, createFailoverCluster);
  ext.cluster.register(FAILFAST, createFailfastCluster);
  ext.cluster.register(FAILSAFE, createFailsafeCluster);
  ext.cluster.register(FAILBACK, createFailbackCluster);
  ext.cluster.register(FORKING, createForkingCluster);
  ext.cluster.register(BROADCAST, createBroadcastCluster);
  ext.filter.register(TOKEN, createTokenFilter);
  ext.filter.register(CONCURRENCY_LIMIT, createConcurrencyLimitFilter);
  ext.filter.register(ACCESS_LOG, createAccessLogFilter);
  ext.filter.register(METRICS, createMetricsFilter);
  ext.filter.register(TRACE_CONTEXT, createTraceContextFilter);
  ext.filter.register(OPENTELEMETRY, createOpenTelemetryFilter);
  return ext;
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
