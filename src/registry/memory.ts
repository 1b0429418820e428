import { instanceKey, matchesQuery, type ServiceInstance, type ServiceQuery } from './instance.js';
import type { InstancesListener, Registry, Subscription } from './registry.js';

/**
 * An in-process registry (Dubbo's injvm): providers and consumers in one process find each
 * other by sharing one instance. Listeners are called synchronously on every change.
 */
export class MemoryRegistry implements Registry {
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

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  #matching(query: ServiceQuery): ServiceInstance[] {
    return [...this.#records.values()].filter((record) => matchesQuery(query, record));
  }

  #notify(changed: ServiceInstance): void {
    for (const { query, listener } of this.#listeners) {
      if (matchesQuery(query, changed)) listener(this.#matching(query));
    }
  }
}
