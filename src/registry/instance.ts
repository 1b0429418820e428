/** One protocol a provider serves, and the port it serves it on. */
export interface Endpoint {
  readonly protocol: string;
  readonly port: number;
}

/** A method as a provider advertises it. */
export interface MethodDescriptor {
  readonly name: string;
  readonly stream: boolean;
  readonly idempotent: boolean;
}

/**
 * One exported service on one provider: what consumers need to find, pick and call it.
 * Providers register one record per exported service.
 */
export interface ServiceInstance {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly host: string;
  readonly port: number;
  /**
   * Transport name of `port`, `tcp` for the built-in transport. `*` (direct `shuttle://`
   * addresses only) means "whatever the consumer speaks".
   */
  readonly protocol: string;
  /**
   * Every protocol the provider serves and its port, `protocol`/`port` first, when it serves
   * more than one (e.g. tcp and grpc side by side). Consumers use the endpoint of the
   * transport they are configured with; `host:port` stays the provider's identity.
   */
  readonly endpoints?: readonly Endpoint[];
  /** Serializer names the provider accepts. */
  readonly serializers: readonly string[];
  readonly methods: readonly MethodDescriptor[];
  /** Relative weight for load balancing (100 = normal). */
  readonly weight: number;
  /**
   * When the provider started, for warm-up: epoch ms on the provider's wall clock as registered;
   * in a consumer's directory, on that consumer's `monotonicNow()` clock (see client/start-times.ts).
   */
  readonly startTime: number;
  /** Calls the provider runs at once before refusing (its `maxConcurrentCalls`), if limited. */
  readonly maxConcurrentCalls?: number;
  /** Free-form facts: model, GPU, batch slots, KV capacity, zone, tags. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /**
   * The provider's latest live load, attached by registries that carry a load channel
   * (etcd, file); undefined when none was reported yet or the registry has none.
   */
  readonly load?: LoadSnapshot;
}

/**
 * A provider's live load, published on the registry's load channel (more often than records
 * change). One snapshot per provider address, shared by all its services.
 */
export interface LoadSnapshot {
  /**
   * When the provider took it (the provider's wall clock, epoch ms): for people and logs. A
   * balancer reads it only when `receivedAt` is missing (a simulation stamping its own clock).
   */
  readonly timestamp: number;
  /**
   * When this consumer received it, on the consumer's `monotonicNow()` clock; set by the
   * registry (or the connection, for a report piggybacked on an answer) on arrival. A load's age
   * is judged by this, never by `timestamp`: another host's clock may be hours off ours.
   */
  readonly receivedAt?: number;
  /** Requests being served (GPU: sequences in the running batch). */
  readonly running: number;
  /** Requests queued behind them. */
  readonly waiting: number;
  /** Prompt tokens of the queued requests that are not in the prefix cache. */
  readonly waitingUncachedTokens: number;
  /** KV-cache use, 0..1. */
  readonly kvUsage: number;
  /** Generated tokens per second, recent average. */
  readonly tokensPerSecond: number;
  /** The provider is shutting down: consumers must stop picking it. */
  readonly draining: boolean;
  /** Prefix-cache hit rate, 0..1, when the provider knows it. */
  readonly cacheHitRate?: number;
  /**
   * What the provider's prefix cache holds, as a compact summary (loadbalance/cache-summary.ts):
   * chain hashes of cached prefixes at landmark lengths, most recently used first, at most
   * {@link MAX_CACHE_SUMMARY}. Absent when the provider does not know or does not say.
   */
  readonly cachedPrefixes?: readonly number[];
}

/** Most entries of `LoadSnapshot.cachedPrefixes` a provider publishes and a consumer accepts. */
export const MAX_CACHE_SUMMARY = 2048;

/** Whether `value` is a well-formed `cachedPrefixes` summary. */
export function isCacheSummary(value: unknown): value is readonly number[] {
  return Array.isArray(value) && value.length <= MAX_CACHE_SUMMARY && value.every((hash) => Number.isInteger(hash) && hash >= 0 && hash < 0x40000000);
}

/**
 * The instance as a consumer speaking `protocol` sees it: itself when its primary protocol is
 * `protocol` (or `*`), a copy with the port of its `protocol` endpoint when it serves it on
 * another port, or undefined when it does not serve it at all. The copy keeps the attached
 * load, which registries key by the primary address.
 */
export function endpointFor(instance: ServiceInstance, protocol: string): ServiceInstance | undefined {
  if (instance.protocol === protocol) return instance;
  if (instance.protocol === '*') return { ...instance, protocol };
  const endpoint = instance.endpoints?.find((candidate) => candidate.protocol === protocol);
  return endpoint === undefined ? undefined : { ...instance, protocol, port: endpoint.port };
}

/** `host:port` of an instance, the key its load snapshot is published under. */
export function instanceAddress(instance: Pick<ServiceInstance, 'host' | 'port'>): string {
  return `${instance.host}:${instance.port}`;
}

/** What a consumer subscribes to. Empty version or group, or `*`, match any. */
export interface ServiceQuery {
  readonly service: string;
  readonly version?: string;
  readonly group?: string;
}

/** The identity of a record: the same service, version and group at the same address. */
export function instanceKey(instance: ServiceInstance): string {
  return `${instance.service}/${instance.version}/${instance.group}/${instance.host}:${instance.port}`;
}

/** Whether `instance` is one that `query` asks for. */
export function matchesQuery(query: ServiceQuery, instance: ServiceInstance): boolean {
  return (
    instance.service === query.service &&
    (query.version === undefined || query.version === '' || query.version === '*' || query.version === instance.version) &&
    (query.group === undefined || query.group === '*' || query.group === instance.group)
  );
}
