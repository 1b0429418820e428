import { checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { ServiceInstance, ServiceQuery } from './instance.js';
import type { InstancesListener, Registry, Subscription } from './registry.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'shuttle';

/** `shuttle://host:port[,host:port]`, or `{ type: 'shuttle', options: { url } }`. */
export const createDirectRegistry: ExtensionFactory<Registry> = (options) => {
  checkKnownKeys('shuttle registry options', options, ['url']);
  if (typeof options['url'] !== 'string' || !options['url'].startsWith('shuttle://')) {
    throw invalidOption('registry', options['url'], 'shuttle://host:port[,host:port]');
  }
  return DirectRegistry.fromUrl(options['url']);
};

/**
 * Providers named by address, with no registry server: `shuttle://host:port[,host:port]`.
 * Every query is answered with every address, as if each provider exported every service
 * over the consumer's transport;
 * registering is refused because there is nowhere to announce to.
 */
export class DirectRegistry implements Registry {
  readonly name = 'direct';
  readonly #addresses: readonly { host: string; port: number }[];

  constructor(addresses: readonly { host: string; port: number }[]) {
    this.#addresses = addresses;
  }

  /** Parses `shuttle://host:port[,host:port]`; IPv6 hosts go in brackets. */
  static fromUrl(url: string): DirectRegistry {
    const list = url.slice('shuttle://'.length);
    const addresses = list.split(',').map((part) => {
      const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/]+)):(\d{1,5})$/.exec(part.trim());
      const port = match ? Number(match[3]) : NaN;
      if (!match || port < 1 || port > 65535) {
        throw invalidOption('registry address', part, 'host:port with a port from 1 to 65535, e.g. shuttle://127.0.0.1:20880');
      }
      return { host: (match[1] ?? match[2])!, port };
    });
    return new DirectRegistry(addresses);
  }

  async register(instance: ServiceInstance): Promise<void> {
    throw new TypeError(`shuttle-rpc: cannot register ${instance.service} with a direct shuttle:// registry; use a MemoryRegistry or etcd`);
  }

  async unregister(): Promise<void> {}

  /** There is no load channel without a registry; providers' reports go nowhere. */
  async reportLoad(): Promise<void> {}

  async subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription> {
    listener(
      this.#addresses.map((address) => ({
        service: query.service,
        version: query.version ?? '',
        group: query.group ?? '',
        host: address.host,
        port: address.port,
        // The address speaks whatever transport the consumer is configured with.
        protocol: '*',
        serializers: [],
        methods: [],
        weight: 100,
        startTime: 0,
        metadata: {},
      })),
    );
    return { close: () => {} };
  }

  async close(): Promise<void> {}
}
