import { instanceKey, matchesQuery, type ServiceInstance, type ServiceQuery } from './instance.js';
import type { InstancesListener, Registry, Subscription } from './registry.js';

/**
 * An in-process registry (Dubbo's injvm): providers and consumers in one process find each
 * other by sharing one instance — passed as an object, or named by `memory://NAME` (`memory://`
 * alone is the name `default`). Listeners are called synchronously on every change.
 */
export class MemoryRegistry implements Registry {
  /*
   * Named registries are process-wide on purpose: "in-process" is the whole contract of
   * memory://, so a server and a client created with the same URL must meet. Tests that want
   * isolation use their own name or their own instance.
   */
  static readonly #named = new Map<string, MemoryRegistry>();

  /** The process-wide registry called `name`, created on first use. */
  static named(name: string): MemoryRegistry {
    let registry = MemoryRegistry.#named.get(name);
    if (registry === undefined) {
      registry = new MemoryRegistry();
      MemoryRegistry.#named.set(name, registry);
    }
    return registry;
  }

  readonly name = 'memory';
  readonly #records = new Map<string, ServiceInstance>();
  readonly #listeners = new Set<{ query: ServiceQuery; listener: InstancesListener }>();

  async register(instance: ServiceInstance): Promise<void> {
    this.#records.set(instanceKey(instance), instance);
    this.#notify(instance);
  }

  async unregister(instance: ServiceInstance): Promise<void> {
    if (this.#records.delete(instanceKey(instance))) this.#notify(instance);
  }

  async subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription> {
    const entry = { query, listener };
    this.#listeners.add(entry);
    listener(this.#matching(query));
    return { close: () => this.#listeners.delete(entry) };
  }

  /**
   * Nothing to release: a memory registry lives as long as the process, and closing one user's
   * handle must not cut off the others sharing it. Records leave through unregister.
   */
  async close(): Promise<void> {}

  #matching(query: ServiceQuery): ServiceInstance[] {
    return [...this.#records.values()].filter((record) => matchesQuery(query, record));
  }

  #notify(changed: ServiceInstance): void {
    for (const { query, listener } of this.#listeners) {
      if (matchesQuery(query, changed)) listener(this.#matching(query));
    }
  }
}
