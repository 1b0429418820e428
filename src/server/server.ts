import os from 'node:os';
import { checkInt, checkKnownKeys, checkName, invalidOption, MAX_TIMER_MS } from '../common/validate.js';
import { resolveRegistry, type Registry, type ServiceInstance } from '../registry/registry.js';
import { SerializerSet, defaultSerializers, type Serializer } from '../serializer/serializer.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/frame.js';
import { listenTcp } from '../transport/tcp/tcp-server.js';
import type { TransportServer } from '../transport/transport.js';
import { Dispatcher } from './dispatcher.js';

export type { CallContext } from './call-context.js';

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** Instances of @RpcService classes to export. */
  services: readonly object[];
  /** Interface to bind. Loopback by default: set `0.0.0.0` (and `advertiseHost`) to serve other machines. */
  host?: string;
  /** Port to bind; 0 (the default) takes a free port, which the registry record carries. */
  port?: number;
  /** The address consumers should dial, when it differs from `host` (e.g. behind 0.0.0.0). */
  advertiseHost?: string;
  /** Where to announce the services; none by default (consumers then dial `shuttle://host:port`). */
  registry?: string | Registry;
  /** Relative load-balancing weight, 1..10000; 100 by default. */
  weight?: number;
  /** Free-form facts for consumers and balancers: model, gpu, slots, kvCapacityTokens, zone… */
  metadata?: Readonly<Record<string, unknown>>;
  /** Serializers accepted besides the defaults (msgpack, json), e.g. a protobuf serializer. */
  serializers?: readonly Serializer[];
  /** Largest frame body accepted; 8 MiB by default. */
  maxFrameBytes?: number;
  /** How long `close()` lets running calls finish; 10 s by default. */
  drainTimeoutMs?: number;
}

/** A running provider. */
export interface RpcServer {
  readonly host: string;
  readonly port: number;
  /** `shuttle://host:port`, usable as a consumer's registry option. */
  readonly url: string;
  /** The records announced to the registry (one per exported service). */
  readonly instances: readonly ServiceInstance[];
  /** Open consumer connections. */
  readonly connections: number;
  /**
   * Graceful stop: removes the records from the registry (so consumers stop picking this
   * provider), sends GOAWAY, lets running calls finish within `drainTimeoutMs`, then closes.
   */
  close(): Promise<void>;
}

const KNOWN_KEYS = ['services', 'host', 'port', 'advertiseHost', 'registry', 'weight', 'metadata', 'serializers', 'maxFrameBytes', 'drainTimeoutMs'];

/** Exports `options.services` over the tcp transport and announces them to the registry. */
export async function createServer(options: ServerOptions): Promise<RpcServer> {
  if (options === null || typeof options !== 'object') throw invalidOption('server options', options, 'an object');
  checkKnownKeys('server', options, KNOWN_KEYS);
  if (!Array.isArray(options.services) || options.services.length === 0) {
    throw invalidOption('services', options.services, 'a non-empty array of @RpcService instances');
  }
  const host = options.host === undefined ? '127.0.0.1' : checkName('host', options.host);
  const port = checkInt('port', options.port, 0, 65535, 0);
  const weight = checkInt('weight', options.weight, 1, 10_000, 100);
  const maxFrameBytes = checkInt('maxFrameBytes', options.maxFrameBytes, 1024, 2 ** 32 - 1, DEFAULT_MAX_FRAME_BYTES);
  const drainTimeoutMs = checkInt('drainTimeoutMs', options.drainTimeoutMs, 0, MAX_TIMER_MS, 10_000);
  const metadata = options.metadata ?? {};
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw invalidOption('metadata', metadata, 'an object of JSON-safe values');
  }
  const serializers = new SerializerSet([...defaultSerializers(), ...(options.serializers ?? [])]);
  const dispatcher = new Dispatcher(options.services, serializers);
  const registry = options.registry === undefined ? undefined : resolveRegistry(options.registry);

  const transport = await listenTcp(dispatcher, { host, port, maxFrameBytes });
  const advertiseHost = options.advertiseHost ?? (isWildcard(transport.host) ? firstExternalAddress() : transport.host);
  const startTime = Date.now();
  const instances: ServiceInstance[] = dispatcher.exports().map((exported) => ({
    service: exported.meta.name,
    version: exported.meta.version,
    group: exported.meta.group,
    host: advertiseHost,
    port: transport.port,
    protocol: 'tcp',
    serializers: serializers.names(),
    methods: [...exported.methods.values()].map(({ meta }) => ({ name: meta.name, stream: meta.stream, idempotent: meta.idempotent })),
    weight,
    startTime,
    metadata,
  }));
  try {
    for (const instance of instances) await registry?.register(instance);
  } catch (error) {
    await transport.close({ timeoutMs: 0 });
    throw error;
  }
  return new RunningServer(transport, registry, instances, advertiseHost, drainTimeoutMs);
}

class RunningServer implements RpcServer {
  readonly #transport: TransportServer;
  readonly #registry: Registry | undefined;
  readonly #drainTimeoutMs: number;
  readonly instances: readonly ServiceInstance[];
  readonly host: string;
  #closing: Promise<void> | undefined;

  constructor(transport: TransportServer, registry: Registry | undefined, instances: ServiceInstance[], host: string, drainTimeoutMs: number) {
    this.#transport = transport;
    this.#registry = registry;
    this.instances = instances;
    this.host = host;
    this.#drainTimeoutMs = drainTimeoutMs;
  }

  get port(): number {
    return this.#transport.port;
  }

  get url(): string {
    return `shuttle://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get connections(): number {
    return this.#transport.connections;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Leave the registry first so that no consumer picks this provider while it drains.
      await Promise.allSettled(this.instances.map((instance) => this.#registry?.unregister(instance)));
      await this.#transport.close({ timeoutMs: this.#drainTimeoutMs });
    })();
    return this.#closing;
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** A provider bound to every interface advertises the machine's first external IPv4, as Dubbo does. */
function firstExternalAddress(): string {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}
