/**
 * shuttle-rpc: the public API. Everything a provider or consumer application uses is exported
 * here; plugin authors also use `shuttle-rpc/spi`, tests `shuttle-rpc/testing`.
 */
export {
  RpcService,
  RpcMethod,
  RpcReference,
  defineService,
  unary,
  serverStream,
  type RpcServiceOptions,
  type RpcMethodOptions,
  type ServiceDescriptor,
  type MethodDescriptor,
  type MethodKind,
  type MethodKinds,
  type ServiceImplementation,
} from './decorators/decorators.js';
export { RpcError, RpcCode, codeName, type ErrorDetails, type RpcErrorOptions, type WireError } from './errors/errors.js';
export { createServer, type RpcServer, type ServerOptions, type ExtraTransport, type CallContext, type ServerBudget } from './server/server.js';
export {
  createClient,
  type AttemptEvent,
  type RpcClient,
  type ClientOptions,
  type ProviderStatus,
  type ReferenceOptions,
  type RouteEvent,
} from './client/client.js';
export { callOutcome, type CallOutcome } from './client/outcome.js';
export type { BreakerOptions, EjectionOptions } from './cluster/provider-health.js';
export type { BackoffOptions } from './common/backoff.js';
export type { MockOptions } from './client/mock.js';
export type {
  RpcCall,
  CallOptions,
  OneWayCallOptions,
  AnsweredCallOptions,
  Proxied,
  ProxiedMethod,
  ProxiedResult,
  StreamingCall,
} from './proxy/proxy.js';
export { currentCallScope, type CallScope } from './call/call-scope.js';
export { monotonicNow } from './common/clock.js';
export { PushStream, type PushStreamOptions } from './server/push-stream.js';
export type { Endpoint, LoadSnapshot, Registry, ServiceInstance, ServiceQuery } from './registry/registry.js';
export { MemoryRegistry } from './registry/memory.js';
export type { RouteDecision, RouteBranch } from './loadbalance/loadbalance.js';
export { createContext, type ContextOptions, type ShuttleContext } from './spi/context.js';
export type { ShuttlePlugin } from './spi/plugin.js';
export type { ExtensionSpec } from './common/extension-registry.js';
export { loadConfig, ENV_VARIABLES, type ConfigSource, type FileConfig } from './config/config.js';
export { createProtobufSerializer, type ProtobufSerializerOptions } from './serializer/protobuf.js';
export type { Serializer } from './serializer/serializer.js';
export type { BudgetUse, ConnectionLimits } from './transport/transport.js';
export type { RefusalReason, RefusedConnections } from './transport/admission.js';
export type { TlsOptions } from './transport/tls-options.js';
export type { Metadata, Peer } from './call/invocation.js';
export type { GrpcTlsOptions, GrpcTransportOptions } from './transport/grpc/grpc.js';
export { ShuttleMetrics, type ConsumerTotals, type ProviderTotals } from './metrics/metrics.js';
export type { ProviderSeriesLimits } from './metrics/provider-series.js';
export type { WatchedClient, WatchedKvEvents, WatchedServer } from './metrics/reports.js';
export { parseTraceParent, formatTraceParent, childTraceParent, TRACEPARENT, type TraceParent } from './trace/trace.js';
export { startAdminServer, type AdminServer, type AdminServerOptions } from './metrics/admin.js';
