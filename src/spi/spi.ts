/**
 * shuttle-rpc/spi: the extension points, for authors of plugins — serializers, transports,
 * registries, load balancers, cluster strategies and filters. docs/PLUGINS.md explains how to
 * write one. Application code needs only the main entry point.
 */
export {
  ExtensionRegistry,
  type ExtensionFactory,
  type ExtensionOptions,
  type ExtensionSpec,
  type RegisterOptions,
} from '../common/extension-registry.js';
export { cloneExtensions, defaultExtensions, emptyExtensions, type Extensions } from './extensions.js';
export { createContext, type ContextOptions, type ShuttleContext } from './context.js';
export { loadPlugins, PluginError, type ShuttlePlugin } from './plugin.js';
export { SerializerId, SerializerSet, DEFAULT_SERIALIZERS, isSerializer, type PayloadTarget, type Serializer } from '../serializer/serializer.js';
export { createMsgpackSerializer } from '../serializer/msgpack.js';
export { createJsonSerializer } from '../serializer/json.js';
export { createProtobufSerializer, type ProtobufSerializerOptions } from '../serializer/protobuf.js';
export { DirectRegistry } from '../registry/direct.js';
export { MemoryRegistry } from '../registry/memory.js';
export {
  instanceKey,
  isRegistry,
  matchesQuery,
  resolveRegistry,
  type InstancesListener,
  type LoadSnapshot,
  type MethodDescriptor,
  type Registry,
  type ServiceInstance,
  type ServiceQuery,
  type Subscription,
} from '../registry/registry.js';
export {
  isLoadBalancer,
  type CallOutcome,
  type LoadBalancer,
  type ProviderStats,
  type ProviderView,
  type RouteBranch,
  type RouteDecision,
} from '../loadbalance/loadbalance.js';
export { DEFAULT_LOAD_SCORE, estimateLoad, freshestLoad, leastLoaded, loadScore, type LoadEstimate, type LoadScoreOptions } from '../loadbalance/load-score.js';
export { environmentOption, type BalancerEnvironment, type TimeSource } from '../loadbalance/environment.js';
export { isLandmark, summaryMatch } from '../loadbalance/cache-summary.js';
export { DEFAULT_WARMUP_MS, capacity, effectiveWeight, hasRoom, slots, withRoom } from '../loadbalance/weights.js';
export { hash32, hashRange, prefixBlockHashes } from '../loadbalance/hash.js';
export { isClusterStrategy, safeToRetry, type ClusterCall, type ClusterCandidate, type ClusterStrategy } from '../cluster/cluster.js';
export { RetryBudget, type RetryBudgetOptions } from '../cluster/retry-budget.js';
export { isProviderFailure } from '../cluster/provider-health.js';
export {
  DEFAULT_FILTERS,
  buildFilters,
  composeFilters,
  isFilter,
  type Filter,
  type FilterInvocation,
  type FilterSide,
  type NextFilter,
  type CallAdmission,
} from '../filter/filter.js';
export { createContextKey, createContextValues, type ContextKey, type ContextValues } from '../call/context-values.js';
export { TOKEN_META } from '../filter/token.js';
// A transport's `openStream` returns one: the consumer side of a stream, whatever the wire.
// (The tcp wire codec — frames, envelopes, stream frames — is the tcp transport's own, not an
// extension point.)
export { ClientStream } from '../transport/client-stream.js';
export {
  TIMEOUT_META,
  isTransport,
  type CallHandler,
  type ClientConnection,
  type ConnectOptions,
  type ConnectionState,
  type ListenOptions,
  type ProviderCallInfo,
  type ResolvedMethod,
  type ServedService,
  type Transport,
  type TransportServer,
} from '../transport/transport.js';
export type { RequestHead } from '../transport/envelope.js';
export type { CloseOptions } from '../transport/close-wait.js';
export type { ConnectGate } from '../transport/connect-gate.js';
export type { RefusalListener, RefusalReason } from '../transport/admission.js';
export type { BackoffOptions } from '../common/backoff.js';
export { createInvocation, type Invocation, type Metadata } from '../call/invocation.js';
export { codeFromNodeError, isRetryableCode } from '../errors/errors.js';
