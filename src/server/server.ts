import os from 'node:os';
import { checkInt, checkKnownKeys, checkName, definedOnly, invalidOption, MAX_TIMER_MS } from '../common/validate.js';
import { loadConfig, type ConfigSource } from '../config/config.js';
import { buildFilters, type Filter } from '../filter/filter.js';
import { resolveRegistry, type Registry, type ServiceInstance } from '../registry/registry.js';
import { DEFAULT_SERIALIZERS, SerializerSet, type Serializer } from '../serializer/serializer.js';
import { resolveContext } from '../spi/context.js';
import type { ExtensionSpec } from '../spi/extension-registry.js';
import type { ShuttleContext } from '../spi/context.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/frame.js';
import type { Transport, TransportServer } from '../transport/transport.js';
import { Dispatcher } from './dispatcher.js';

export type { CallContext } from './call-context.js';

/** Options of {@link createServer}; every key but `services` may also come from config. */
export interface ServerOptions {
  /** Instances of @RpcService classes to export. */
  services: readonly object[];
  /** Interface to bind. Loopback by default: set `0.0.0.0` (and `advertiseHost`) to serve other machines. */
  host?: string;
  /** Port to bind; 0 (the default) takes a free port, which the registry record carries. */
  port?: number;
  /** The address consumers should dial, when it differs from `host` (e.g. behind 0.0.0.0). */
  advertiseHost?: string;
  /** Where to announce the services: a URL (`memory://`, …), `{ type, options }` or an instance. */
  registry?: ExtensionSpec<Registry>;
  /** Relative load-balancing weight, 1..10000; 100 by default. */
  weight?: number;
  /** Free-form facts for consumers and balancers: model, gpu, slots, kvCapacityTokens, zone… */
  metadata?: Readonly<Record<string, unknown>>;
  /** Serializers accepted besides msgpack and json: names, `{ type, options }` or instances. */
  serializers?: readonly ExtensionSpec<Serializer>[];
  /** The transport; `tcp` by default. */
  transport?: ExtensionSpec<Transport>;
  /** Provider filters besides the defaults; `-name` removes a default (see docs/PLUGINS.md). */
  filters?: readonly ExtensionSpec<Filter>[];
  /** Require this token from every caller (the default `token` filter). */
  token?: string;
  /** Refuse calls beyond this many at once with RESOURCE_EXHAUSTED (the default `concurrency-limit` filter). */
  maxConcurrentCalls?: number;
  /** Largest frame body accepted; 8 MiB by default. */
  maxFrameBytes?: number;
  /** How long `close()` lets running calls finish; 10 s by default. */
  drainTimeoutMs?: number;
  /** Plugin modules to load into this server's context. */
  plugins?: readonly string[];
  /** The extension context to use; a new one (built-ins + plugins) by default. */
  context?: ShuttleContext;
  /** Where file and environment configuration come from; `false` reads neither. */
  config?: ConfigSource | false;
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
  /** The extension context this server resolved its names in. */
  readonly context: ShuttleContext;
  /**
   * Graceful stop: removes the records from the registry (so consumers stop picking this
   * provider), sends GOAWAY, lets running calls finish within `drainTimeoutMs`, then closes.
   */
  close(): Promise<void>;
}

const KNOWN_KEYS = [
  'services', 'host', 'port', 'advertiseHost', 'registry', 'weight', 'metadata', 'serializers', 'transport',
  'filters', 'token', 'maxConcurrentCalls', 'maxFrameBytes', 'drainTimeoutMs', 'plugins', 'context', 'config',
];

/** Exports `options.services` and announces them to the registry. */
export async function createServer(options: ServerOptions): Promise<RpcServer> {
  if (options === null || typeof options !== 'object') throw invalidOption('server options', options, 'an object');
  checkKnownKeys('server', options, KNOWN_KEYS);
  const fileConfig = options.config === false ? undefined : await loadConfig(options.config);
  checkKnownKeys(`server config${fileConfig?.file ? ` in ${fileConfig.file}` : ''}`, fileConfig?.server ?? {}, KNOWN_KEYS.filter((key) => !['services', 'context', 'config'].includes(key)));
  const merged = { registry: fileConfig?.registry, plugins: fileConfig?.plugins, ...fileConfig?.server, ...definedOnly(options) } as ServerOptions;

  if (!Array.isArray(merged.services) || merged.services.length === 0) {
    throw invalidOption('services', merged.services, 'a non-empty array of @RpcService instances');
  }
  const host = merged.host === undefined ? '127.0.0.1' : checkName('host', merged.host);
  const port = checkInt('port', merged.port, 0, 65535, 0);
  const weight = checkInt('weight', merged.weight, 1, 10_000, 100);
  const maxFrameBytes = checkInt('maxFrameBytes', merged.maxFrameBytes, 1024, 2 ** 32 - 1, DEFAULT_MAX_FRAME_BYTES);
  const drainTimeoutMs = checkInt('drainTimeoutMs', merged.drainTimeoutMs, 0, MAX_TIMER_MS, 10_000);
  const maxConcurrentCalls = checkInt('maxConcurrentCalls', merged.maxConcurrentCalls, 1, 1_000_000);
  if (merged.advertiseHost !== undefined) checkName('advertiseHost', merged.advertiseHost);
  const metadata = merged.metadata ?? {};
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw invalidOption('metadata', metadata, 'an object of JSON-safe values');
  }
  if (merged.serializers !== undefined && !Array.isArray(merged.serializers)) {
    throw invalidOption('serializers', merged.serializers, 'an array of serializer names, { type, options } or instances');
  }

  const context = await resolveContext(merged.context, merged.plugins, options.config === false ? undefined : options.config?.cwd);
  const ext = context.extensions;
  const serializers = new SerializerSet(
    [...DEFAULT_SERIALIZERS, ...(merged.serializers ?? [])].map((spec, index) => ext.serializer.create(spec, `serializers[${index}]`)),
  );
  const filters = buildFilters('provider', merged.filters, ext.filter, {
    token: merged.token === undefined ? {} : { token: merged.token },
    'concurrency-limit': maxConcurrentCalls === undefined ? {} : { max: maxConcurrentCalls },
  });
  const transport = ext.transport.create(merged.transport ?? 'tcp', 'transport');
  const dispatcher = new Dispatcher(merged.services, serializers, filters);
  const registry = merged.registry === undefined ? undefined : resolveRegistry(merged.registry as ExtensionSpec<Registry>, ext.registry);

  const server = await transport.listen(dispatcher, { host, port, maxFrameBytes });
  const advertiseHost = merged.advertiseHost ?? (isWildcard(server.host) ? firstExternalAddress() : server.host);
  const startTime = Date.now();
  const instances: ServiceInstance[] = dispatcher.exports().map((exported) => ({
    service: exported.meta.name,
    version: exported.meta.version,
    group: exported.meta.group,
    host: advertiseHost,
    port: server.port,
    protocol: transport.name,
    serializers: serializers.names(),
    methods: [...exported.methods.values()].map(({ meta }) => ({ name: meta.name, stream: meta.stream, idempotent: meta.idempotent })),
    weight,
    startTime,
    metadata,
  }));
  try {
    for (const instance of instances) await registry?.register(instance);
  } catch (error) {
    await server.close({ timeoutMs: 0 });
    throw error;
  }
  return new RunningServer(server, registry, instances, advertiseHost, drainTimeoutMs, context);
}

class RunningServer implements RpcServer {
  readonly #transport: TransportServer;
  readonly #registry: Registry | undefined;
  readonly #drainTimeoutMs: number;
  readonly instances: readonly ServiceInstance[];
  readonly host: string;
  readonly context: ShuttleContext;
  #closing: Promise<void> | undefined;

  constructor(transport: TransportServer, registry: Registry | undefined, instances: ServiceInstance[], host: string, drainTimeoutMs: number, context: ShuttleContext) {
    this.#transport = transport;
    this.#registry = registry;
    this.instances = instances;
    this.host = host;
    this.#drainTimeoutMs = drainTimeoutMs;
    this.context = context;
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
