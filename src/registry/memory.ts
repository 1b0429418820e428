import { instanceAddress, instanceKey, matchesQuery, type LoadSnapshot, type ServiceInstance, type ServiceQuery } from './instance.js';
import { checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { InstancesListener, Registry, Subscription } from './registry.js';
import { monotonicNow } from '../common/clock.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'memory';

/**
 * `memory://[name]`, or `{ type: 'memory', options: { name } }`: the process-wide in-process
 * registry of that name (`default` when empty).
 */
export const createMemoryRegistry: ExtensionFactory<Registry> = (options) => {
  checkKnownKeys('memory registry options', options, ['url', 'name']);
  let name = options['name'];
  if (options['url'] !== undefined) {
    const match = typeof options['url'] === 'string' ? /^memory:\/\/([A-Za-z0-9._-]*)$/.exec(options['url']) : null;
    if (match === null) throw invalidOption('registry', options['url'], 'memory://NAME with a name of letters, digits, ".", "_" or "-"');
    name = match[1];
  }
  if (name !== undefined && (typeof name !== 'string' || !/^[A-Za-z0-9._-]*$/.test(name))) {
    throw invalidOption('memory registry name', name, 'letters, digits, ".", "_" or "-"');
  }
  return MemoryRegistry.named((name as string | undefined) || 'default');
};

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
  readonly #loads = new Map<string, LoadSnapshot>();
  readonly #listeners = new Set<{ query: ServiceQuery; listener: InstancesListener }>();

  async register(instance: ServiceInstance): Promise<void> {
    this.#records.set(instanceKey(instance), instance);
    this.#notify(instance);
  }

  async unregister(instance: ServiceInstance): Promise<void> {
    if (this.#records.delete(instanceKey(instance))) this.#notify(instance);
    if (![...this.#records.values()].some((record) => instanceAddress(record) === instanceAddress(instance))) {
      this.#loads.delete(instanceAddress(instance));
    }
  }

  async services(): Promise<string[]> {
    return [...new Set([...this.#records.values()].map((record) => record.service))].sort();
  }

  async reportLoad(address: string, load: LoadSnapshot): Promise<void> {
    this.#loads.set(address, { ...load, receivedAt: monotonicNow() });
    for (const record of this.#records.values()) {
      if (instanceAddress(record) === address) {
        this.#notify(record);
        return;
      }
    }
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
    return [...this.#records.values()]
      .filter((record) => matchesQuery(query, record))
      .map((record) => {
        const load = this.#loads.get(instanceAddress(record));
        return load === undefined ? record : { ...record, load };
      });
  }

  #notify(changed: ServiceInstance): void {
    for (const { query, listener } of this.#listeners) {
      if (matchesQuery(query, changed)) listener(this.#matching(query));
    }
  }
}
