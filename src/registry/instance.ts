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
  /** Transport name, `tcp` for the built-in transport. */
  readonly protocol: string;
  /** Serializer names the provider accepts. */
  readonly serializers: readonly string[];
  readonly methods: readonly MethodDescriptor[];
  /** Relative weight for load balancing (100 = normal). */
  readonly weight: number;
  /** When the provider started (epoch ms), for warm-up. */
  readonly startTime: number;
  /** Free-form facts: model, GPU, batch slots, KV capacity, zone, tags. */
  readonly metadata: Readonly<Record<string, unknown>>;
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

