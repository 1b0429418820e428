import { invalidOption } from '../common/validate.js';
import { DirectRegistry } from './direct.js';
import { MemoryRegistry } from './memory.js';
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

/**
 * Resolves the `registry` option: a Registry instance is used as is; `memory://[name]` is the
 * process-wide in-process registry of that name; `shuttle://host:port[,…]` names providers
 * directly. Throws a TypeError naming the known forms otherwise.
 */
export function resolveRegistry(option: string | Registry): Registry {
  if (typeof option === 'object' && option !== null && typeof option.subscribe === 'function') return option;
  if (typeof option === 'string') {
    if (option.startsWith('shuttle://')) return DirectRegistry.fromUrl(option);
    const memory = /^memory:\/\/([A-Za-z0-9._-]*)$/.exec(option);
    if (memory !== null) return MemoryRegistry.named(memory[1] || 'default');
  }
  throw invalidOption('registry', option, 'memory://[name], shuttle://host:port[,host:port], or a Registry instance');
}
