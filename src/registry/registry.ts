import { invalidOption } from '../common/validate.js';
import type { ExtensionRegistry, ExtensionSpec } from '../spi/extension-registry.js';
import type { ServiceInstance, ServiceQuery } from './instance.js';

export { DirectRegistry } from './direct.js';
export { MemoryRegistry } from './memory.js';
export { instanceKey, matchesQuery, type MethodDescriptor, type ServiceInstance, type ServiceQuery } from './instance.js';

/** Receives the complete current list of matching instances, first at once, then on each change. */
export type InstancesListener = (instances: readonly ServiceInstance[]) => void;

/** Ends a subscription. */
export interface Subscription {
  close(): void;
}

/**
 * Where providers announce themselves and consumers find them.
 *
 * Contract: `subscribe` calls the listener with a snapshot before its promise resolves, then
 * after every change, always with the whole list (never a delta). `register` of a record
 * with the same key as an existing one replaces it. `close` releases what the registry holds;
 * records of a closed provider registry are removed.
 */
export interface Registry {
  readonly name: string;
  register(instance: ServiceInstance): Promise<void>;
  unregister(instance: ServiceInstance): Promise<void>;
  subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription>;
  close(): Promise<void>;
}

/** Tells a Registry instance from a spec. */
export function isRegistry(value: unknown): value is Registry {
  return value !== null && typeof value === 'object' && typeof (value as Registry).subscribe === 'function' && typeof (value as Registry).register === 'function';
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
      throw invalidOption(key, spec, `a URL whose scheme is a registered registry (${registries.names().map((name) => `${name}://`).join(', ')}), { type, options }, or a Registry instance`);
    }
    return registries.create({ type: scheme, options: { url: spec } }, key);
  }
  return registries.create(spec, key);
}
