import { invalidOption, withoutCredentials } from '../common/validate.js';
import type { ExtensionRegistry, ExtensionSpec } from '../common/extension-registry.js';
import type { LoadSnapshot, ServiceInstance, ServiceQuery } from './instance.js';
export { RECORD_LIMITS, checkInstance, checkLoad, parseInstance, parseLoad } from './record-check.js';

export {
  endpointFor,
  instanceAddress,
  instanceKey,
  matchesQuery,
  MAX_CACHE_SUMMARY,
  type Endpoint,
  type LoadSnapshot,
  type MethodDescriptor,
  type ServiceInstance,
  type ServiceQuery,
} from './instance.js';

/** Receives the complete current list of matching instances, first at once, then on each change. */
export type InstancesListener = (instances: readonly ServiceInstance[]) => void;

/** Ends a subscription. */
export interface Subscription {
  close(): void;
}

/**
 * Where providers announce themselves and consumers find them.
 *
 * Contract:
 * - `register` announces one record, kept alive (lease, heartbeat) until `unregister` or
 *   `close`; a record with the same key as an existing one replaces it. A registry that loses
 *   its session (etcd lease expired during an outage) re-registers by itself.
 * - `reportLoad` publishes the live load of the provider at `address` (`host:port`); the
 *   registry may coalesce frequent reports. Registries without a load channel ignore it.
 * - `subscribe` calls the listener with the whole matching list before its promise resolves,
 *   then after every change (records or their load), always the whole list, never a delta.
 *   It rejects UNAVAILABLE when the registry cannot be read; once it has resolved, an outage
 *   never empties the list — the last known one stays until the registry answers again.
 * - `close` removes this process's records and releases connections, watches and timers.
 */
export interface Registry {
  readonly name: string;
  register(instance: ServiceInstance): Promise<void>;
  unregister(instance: ServiceInstance): Promise<void>;
  reportLoad(address: string, load: LoadSnapshot): Promise<void>;
  subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription>;
  /**
   * The names of the services with at least one live record, sorted (for `shuttle ls` and
   * the admin endpoint). Optional: a registry that cannot enumerate leaves it out.
   */
  services?(): Promise<string[]>;
  /**
   * Every current record of every service, with its latest load, read once without watching
   * (for `shuttle ls`), at most `limit` of them: `truncated` says when there were more.
   * Optional: without it, `shuttle ls` subscribes to each service of {@link services} in turn.
   * Rejects UNAVAILABLE when the registry cannot be read.
   */
  records?(limit: number): Promise<{ records: ServiceInstance[]; truncated: boolean }>;
  close(): Promise<void>;
}

/**
 * The registry a client or server uses when none is configured: the embedded file registry in
 * its default folder (a `file://` URL with no folder). It is resolved by its scheme like any
 * other registry URL, so a plugin that overrides `file` replaces the default as well.
 */
export const DEFAULT_REGISTRY = 'file://';

/** Tells a Registry instance from a spec. */
export function isRegistry(value: unknown): value is Registry {
  return (
    value !== null && typeof value === 'object' && typeof (value as Registry).subscribe === 'function' && typeof (value as Registry).register === 'function'
  );
}

/**
 * Resolves the `registry` option against the registry extensions: a URL picks the extension
 * named by its scheme (`memory://…` -> `memory`, `shuttle://…` -> `shuttle`, a plugin's
 * `consul://…` -> `consul`) and passes it `{ url }`; `{ type, options }` and instances are
 * resolved as for every extension point. Errors name the key and the known schemes.
 */
export function resolveRegistry(spec: ExtensionSpec<Registry>, registries: ExtensionRegistry<Registry>, key = 'registry'): Registry {
  if (typeof spec === 'string') {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
    if (scheme === undefined || !registries.has(scheme)) {
      throw invalidOption(
        key,
        withoutCredentials(spec),
        `a URL whose scheme is a registered registry (${registries
          .names()
          .map((name) => `${name}://`)
          .join(', ')}), { type, options }, or a Registry instance`,
      );
    }
    return registries.create({ type: scheme, options: { url: spec } }, key);
  }
  return registries.create(spec, key);
}
