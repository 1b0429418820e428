import os from 'node:os';
import { checkBool, checkInt, checkKnownKeys, checkName, definedOnly, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';
import { armCallScopes } from '../call/call-scope.js';
import { explainOrigin, loadConfig, type ConfigSource } from '../config/config.js';
import { buildFilters, type Filter } from '../filter/filter.js';
import { DEFAULT_REGISTRY, isRegistry, resolveRegistry, type Endpoint, type LoadSnapshot, type Registry, type ServiceInstance } from '../registry/registry.js';
import { guardSerializer } from '../serializer/guard.js';
import { settleQuietly } from '../common/observers.js';
import { DEFAULT_SERIALIZERS, SerializerSet, type Serializer } from '../serializer/serializer.js';
import { resolveContext } from '../spi/context.js';
import type { ExtensionSpec } from '../common/extension-registry.js';
import type { ShuttleContext } from '../spi/context.js';
import { createLogger, type Logger, type LogOption } from '../log/log.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/defaults.js';
import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { monotonicNow } from '../common/clock.js';
import { listenFailure } from '../common/listen-failure.js';
import { checkLoad } from '../registry/record-check.js';
import {
  DEFAULT_CONNECTION_LIMITS,
  type BudgetUse,
  type ConnectionLimits,
  type RefusedConnections,
  type Transport,
  type TransportServer,
} from '../transport/transport.js';
import { Dispatcher } from './dispatcher.js';
import { limitsWithinFds } from './fd-limit.js';
import { AnswerLoad } from './answer-load.js';
import { ConnectionRefusals } from './refusals.js';
import { StartupSignals } from './startup-signals.js';

export type { CallContext } from '../call/call-context.js';
export type { RefusedConnections } from '../transport/transport.js';

/** A server-wide byte budget of one transport of a server, and what it holds now. */
export interface ServerBudget extends BudgetUse {
  /** The transport keeping it (`tcp`). */
  readonly transport: string;
}

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
  /**
   * Where to announce the services: a URL (`etcd://…`, `file://…`, `memory://…`), `{ type,
   * options }` or an instance; `false` announces nowhere. By default the embedded file
   * registry of this host (`file://` in the OS temp folder), so processes on one machine find
   * each other with no configuration.
   */
  registry?: ExtensionSpec<Registry> | false;
  /** Relative load-balancing weight, 1..10000; 100 by default. */
  weight?: number;
  /** Free-form facts for consumers and balancers: model, gpu, slots, kvCapacityTokens, zone… */
  metadata?: Readonly<Record<string, unknown>>;
  /** Serializers accepted besides msgpack and json: names, `{ type, options }` or instances. */
  serializers?: readonly ExtensionSpec<Serializer>[];
  /** The transport; `tcp` by default. It listens on `port`. */
  transport?: ExtensionSpec<Transport>;
  /**
   * More transports serving the same services, each on its own port, e.g.
   * `[{ transport: 'grpc', port: 50051 }]` to serve tcp and gRPC side by side. The registry
   * records list every protocol and port (`endpoints`); each consumer uses the one its own
   * `transport` names.
   */
  extraTransports?: readonly ExtraTransport[];
  /** Provider filters besides the defaults; `-name` removes a default (see docs/PLUGINS.md). */
  filters?: readonly ExtensionSpec<Filter>[];
  /** Require this token from every caller (the default `token` filter). */
  token?: string;
  /** Refuse calls beyond this many at once with RESOURCE_EXHAUSTED (the default `concurrency-limit` filter). */
  maxConcurrentCalls?: number;
  /**
   * Whether calls made from a handler inherit the deadline and cancellation of the call it
   * serves (AsyncLocalStorage). `true`, the default: followed across awaits once the process
   * has a client (a provider that makes no calls pays nothing; src/call/call-scope.ts says
   * what that leaves out); `'always'`: from the first call, whatever the order clients are
   * made in; `false`: never. On Node 20 the scopes cost 10–20 % of a provider's throughput in a
   * process that follows them (docs/BENCHMARKS.md).
   */
  callScopes?: boolean | 'always';
  /**
   * The provider's live load beyond what the framework counts itself (running calls): waiting
   * requests, uncached waiting tokens, KV use, tokens/s… Called every `loadIntervalMs`; the
   * result is published on the registry's load channel. `draining: true` tells consumers to stop
   * picking this provider for as long as it says so (an engine adapter whose engine is down);
   * calls that still come are served. A provider that is closing is draining whatever it says.
   * A draining snapshot is published without its `cachedPrefixes`: no balancer picks the
   * provider meanwhile, and the drain reaches readers that take only small snapshots.
   */
  load?: () => Partial<Omit<LoadSnapshot, 'timestamp' | 'receivedAt'>>;
  /** How often the load is published; 500 ms by default. */
  loadIntervalMs?: number;
  /** Largest frame body accepted, and the largest answer or stream chunk sent (a larger one fails its call RESOURCE_EXHAUSTED); 8 MiB by default. */
  maxFrameBytes?: number;
  /**
   * Connection limits (every transport): `maxConnections` (10,000), `maxConnectionsPerAddress`
   * (1,000) — both lowered at start, with a warning, when the process's open-file limit cannot
   * hold them — `frameTimeoutMs` (10 s: a frame, or gRPC's HTTP/2 preface, must arrive whole that
   * soon after its first byte), `maxCallsPerConnection` (10,000) and `idleTimeoutMs` (35 s: tcp,
   * without a byte, heartbeats included; grpc, without a call). Connections over a limit are
   * refused (tcp: with a GOAWAY naming it), counted and logged. Byte budgets: `maxUnsentBytes`
   * (4 MiB of unread answers per connection, both transports), `maxDecodedBytesPerConnection`
   * (16 MiB of requests in running calls; grpc: their messages and headers) and server-wide
   * `maxTotalDecodedBytes` (24 MiB of them), both transports; for tcp `maxStreamWindowBytes`
   * (1 MiB), server-wide `maxTotalBufferedBytes` (24 MiB of partial frames) and
   * `maxTotalUnsentBytes` (16 MiB of unread answers); grpc also
   * `maxConnectionAgeMs` and `maxConnectionAgeGraceMs` (0: no age limit, calls never cut).
   * docs/HARDENING.md lists each with what happens when it is reached.
   */
  limits?: Partial<ConnectionLimits>;
  /** How long `close()` lets running calls finish; 10 s by default. */
  drainTimeoutMs?: number;
  /**
   * How long registering may take — every record, then the first load report — before
   * createServer fails naming the registry (30 s by default): a registry that never answers must
   * not leave the start pending for good.
   */
  registerTimeoutMs?: number;
  /**
   * What a caller learns when a method throws something other than an RpcError: by default
   * INTERNAL with a generic message and a correlation id (the message and stack go to this
   * provider's log under that id). `true` adds the thrown message, for development; never
   * on a provider that untrusted callers reach.
   */
  exposeErrors?: boolean;
  /**
   * On SIGTERM, SIGINT or SIGHUP, close gracefully (drain, leave the registry) and then exit
   * the process; a second signal during the drain exits at once, logging what is lost. False
   * by default (a library should not own the process unless asked).
   */
  shutdownOnSignals?: boolean;
  /**
   * Logging: a pino logger, `{ level, stream }` for one of its own (level `info`, or
   * `SHUTTLE_LOG_LEVEL`; standard error), or `false`. Silent at `info` while all is well.
   */
  log?: LogOption;
  /** Plugin modules to load into this server's context. */
  plugins?: readonly string[];
  /** The extension context to use; a new one (built-ins + plugins) by default. */
  context?: ShuttleContext;
  /** Where file and environment configuration come from; `false` reads neither. */
  config?: ConfigSource | false;
}

/** A transport served beside the main one. */
export interface ExtraTransport {
  readonly transport: ExtensionSpec<Transport>;
  /** 0 (the default) takes a free port. */
  readonly port?: number;
}

const EXTRA_TRANSPORT_KEYS = optionKeys<ExtraTransport>()(['transport', 'port']);

/** A running provider. */
export interface RpcServer {
  readonly host: string;
  /** The port of the main transport. */
  readonly port: number;
  /** Every protocol served and its port, the main transport first. */
  readonly endpoints: readonly Endpoint[];
  /** `shuttle://host:port`, usable as a consumer's registry option. */
  readonly url: string;
  /** The records announced to the registry (one per exported service). */
  readonly instances: readonly ServiceInstance[];
  /** Open consumer connections. */
  readonly connections: number;
  /** Connections refused by the connection limits so far, by transport and limit; `frameFlood`: closed for a flood of frames that do no work (tcp). */
  readonly refusedConnections: readonly RefusedConnections[];
  /**
   * The server-wide byte budgets of each transport that keeps them (tcp), with what they hold
   * now: partial frames, unsent answers and decoded requests of running calls.
   */
  readonly budgets: readonly ServerBudget[];
  /** The extension context this server resolved its names in. */
  readonly context: ShuttleContext;
  /** The registry the records went to, if any. */
  readonly registry: Registry | undefined;
  /** The load snapshot published last. */
  readonly lastLoad: LoadSnapshot | undefined;
  /**
   * Graceful stop: publishes a draining load snapshot (consumers stop picking this provider),
   * removes the records, sends GOAWAY, lets running calls finish within `drainTimeoutMs`, then
   * closes the transport and the registry session (revoking an etcd lease).
   */
  close(): Promise<void>;
}

const KNOWN_KEYS = optionKeys<ServerOptions>()([
  'services',
  'host',
  'port',
  'advertiseHost',
  'registry',
  'weight',
  'metadata',
  'serializers',
  'transport',
  'extraTransports',
  'filters',
  'token',
  'maxConcurrentCalls',
  'callScopes',
  'load',
  'loadIntervalMs',
  'maxFrameBytes',
  'limits',
  'drainTimeoutMs',
  'registerTimeoutMs',
  'exposeErrors',
  'shutdownOnSignals',
  'log',
  'plugins',
  'context',
  'config',
]);

/** Exports `options.services` and announces them to the registry. */
export async function createServer(options: ServerOptions): Promise<RpcServer> {
  if (options === null || typeof options !== 'object') throw invalidOption('server options', options, 'an object');
  checkKnownKeys('server', options, KNOWN_KEYS);
  const fileConfig = options.config === false ? undefined : await loadConfig(options.config);
  checkKnownKeys(
    `server config${fileConfig?.file ? ` in ${fileConfig.file}` : ''}`,
    fileConfig?.server ?? {},
    KNOWN_KEYS.filter((key) => !['services', 'context', 'config'].includes(key)),
  );
  const merged = { registry: fileConfig?.registry, plugins: fileConfig?.plugins, ...fileConfig?.server, ...definedOnly(options) } as ServerOptions;
  try {
    return await startServer(merged, options);
  } catch (error) {
    throw explainOrigin(error, fileConfig, 'server', definedOnly(options));
  }
}

/** createServer's work once the options are merged: checks them, listens, registers. */
async function startServer(merged: ServerOptions, options: ServerOptions): Promise<RpcServer> {
  if (!Array.isArray(merged.services) || merged.services.length === 0) {
    throw invalidOption('services', merged.services, 'a non-empty array of @RpcService instances');
  }
  const host = merged.host === undefined ? '127.0.0.1' : checkName('host', merged.host);
  const port = checkInt('port', merged.port, 0, 65535, 0);
  const weight = checkInt('weight', merged.weight, 1, 10_000, 100);
  const maxFrameBytes = checkInt('maxFrameBytes', merged.maxFrameBytes, 1024, 2 ** 32 - 1, DEFAULT_MAX_FRAME_BYTES);
  const drainTimeoutMs = checkInt('drainTimeoutMs', merged.drainTimeoutMs, 0, MAX_TIMER_MS, 10_000);
  const registerTimeoutMs = checkInt('registerTimeoutMs', merged.registerTimeoutMs, 1, MAX_TIMER_MS, REGISTRATION_TIMEOUT_MS);
  const limits = checkLimits(merged.limits);
  const maxConcurrentCalls = checkInt('maxConcurrentCalls', merged.maxConcurrentCalls, 1, 1_000_000);
  const loadIntervalMs = checkInt('loadIntervalMs', merged.loadIntervalMs, 10, MAX_TIMER_MS, 500);
  const shutdownOnSignals = checkBool('shutdownOnSignals', merged.shutdownOnSignals, false);
  const exposeErrors = checkBool('exposeErrors', merged.exposeErrors, false);
  if (merged.load !== undefined && typeof merged.load !== 'function') throw invalidOption('load', merged.load, 'a function returning load figures');
  if (merged.advertiseHost !== undefined) checkName('advertiseHost', merged.advertiseHost);
  const metadata = merged.metadata ?? {};
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw invalidOption('metadata', metadata, 'an object of JSON-safe values');
  }
  if (merged.serializers !== undefined && !Array.isArray(merged.serializers)) {
    throw invalidOption('serializers', merged.serializers, 'an array of serializer names, { type, options } or instances');
  }

  const log = createLogger(merged.log, 'server');
  const context = await resolveContext(merged.context, merged.plugins, options.config === false ? undefined : options.config?.cwd);
  const ext = context.extensions;
  // A plugin's serializer is held to the encode contract (serializer/guard.ts); built-ins are not wrapped.
  const serializers = new SerializerSet(
    [...DEFAULT_SERIALIZERS, ...(merged.serializers ?? [])].map((spec, index) => guardSerializer(ext.serializer.create(spec, `serializers[${index}]`))),
  );
  const filters = buildFilters('provider', merged.filters, ext.filter, {
    token: merged.token === undefined ? {} : { token: merged.token },
    'concurrency-limit': maxConcurrentCalls === undefined ? {} : { max: maxConcurrentCalls },
  });
  const transports = [
    { transport: ext.transport.create(merged.transport ?? 'tcp', 'transport'), port },
    ...checkExtraTransports(merged.extraTransports).map((extra, index) => ({
      transport: ext.transport.create(extra.transport, `extraTransports[${index}].transport`),
      port: checkInt(`extraTransports[${index}].port`, extra.port, 0, 65535, 0),
    })),
  ];
  const names = transports.map((entry) => entry.transport.name);
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice !== undefined) throw invalidOption('extraTransports', twice, `transports other than ${names[0]} and each other (${twice} is served twice)`);
  const dispatcher = new Dispatcher(merged.services, serializers, filters, log, callScopesOf(merged.callScopes), exposeErrors);
  const registrySpec = merged.registry === undefined ? DEFAULT_REGISTRY : merged.registry;
  const registry = registrySpec === false ? undefined : resolveRegistry(registrySpec, ext.registry);
  // A registry made here from a URL or spec is ours to close; an instance passed in is not.
  const ownsRegistry = registry !== undefined && !isRegistry(registrySpec);

  // Armed before anything listens or registers: a signal during start-up (an orchestrator
  // stopping a pod that is still starting) lets the start finish, then stops as any stop does —
  // leaving the registry — instead of killing the process between its registration and the
  // listener, which left its records to their TTL.
  const signals = shutdownOnSignals ? new StartupSignals(log) : undefined;
  const fitted = limitsWithinFds(limits, transports.length, log);
  const refusals = new ConnectionRefusals(log);
  const servers: TransportServer[] = [];
  const answerLoad = new AnswerLoad();
  try {
    for (const entry of transports) {
      servers.push(
        await entry.transport.listen(dispatcher, {
          host,
          port: entry.port,
          maxFrameBytes,
          limits: fitted,
          onRefused: refusals.listener(entry.transport.name),
          loadReport: (answering) => answerLoad.report(answering),
        }),
      );
    }
  } catch (error) {
    await Promise.all(servers.map((started) => started.close({ timeoutMs: 0 })));
    // "cannot listen on …" with no subject: the provider is the process's main server.
    const failure = listenFailure(error, '', host, transports[servers.length]!.port);
    signals?.failed(failure);
    throw failure;
  }
  const server = servers[0]!;
  const endpoints: Endpoint[] = servers.map((started, index) => ({ protocol: names[index]!, port: started.port }));
  const advertiseHost = merged.advertiseHost ?? (isWildcard(server.host) ? firstExternalAddress() : server.host);
  const startTime = Date.now();
  const instances: ServiceInstance[] = dispatcher.exports().map((exported) => ({
    service: exported.meta.name,
    version: exported.meta.version,
    group: exported.meta.group,
    host: advertiseHost,
    port: server.port,
    protocol: names[0]!,
    ...(endpoints.length > 1 ? { endpoints } : {}),
    serializers: serializers.names(),
    methods: [...exported.methods.values()].map(({ meta }) => ({ name: meta.name, stream: meta.stream, idempotent: meta.idempotent })),
    weight,
    startTime,
    ...(maxConcurrentCalls === undefined ? {} : { maxConcurrentCalls }),
    metadata,
  }));
  const running = new RunningServer({
    transports: servers,
    endpoints,
    registry,
    ownsRegistry,
    instances,
    host: advertiseHost,
    drainTimeoutMs,
    context,
    load: merged.load,
    loadIntervalMs,
    log,
    refusals,
    answerLoad,
  });
  answerLoad.source = () => running.snapshot();
  try {
    // A registry that never answers (a plugin's, or one behind a network that drops packets)
    // must not leave createServer pending for good: the whole registration has a bound.
    await withinRegistrationTime(
      (async () => {
        for (const instance of instances) await registry?.register(instance);
        await running.publishLoad();
      })(),
      String(registry?.name),
      registerTimeoutMs,
    );
  } catch (error) {
    await running.close();
    // The registry may be a plugin's, which can fail with anything (a Proxy whose traps throw
    // included): the error names it.
    let chosen = false;
    try {
      chosen = error instanceof RpcError;
    } catch {
      // Not an RpcError.
    }
    const failure = chosen
      ? error
      : new Error(`shuttle-rpc: registry ${String(registry?.name)} could not register this provider: ${thrownMessage(error)}`, { cause: error });
    signals?.failed(failure);
    throw failure;
  }
  running.startLoadReports();
  log.debug(
    { host: advertiseHost, endpoints, services: instances.map((instance) => `${instance.service}@${instance.version}`), registry: registry?.name },
    'listening',
  );
  signals?.started(running);
  return running;
}

interface RunningServerParts {
  /** The main transport first. */
  readonly transports: readonly TransportServer[];
  readonly endpoints: readonly Endpoint[];
  readonly registry: Registry | undefined;
  readonly ownsRegistry: boolean;
  readonly instances: ServiceInstance[];
  readonly host: string;
  readonly drainTimeoutMs: number;
  readonly context: ShuttleContext;
  readonly load: ServerOptions['load'];
  readonly loadIntervalMs: number;
  readonly log: Logger;
  readonly refusals: ConnectionRefusals;
  /** The load report its transports attach to answers. */
  readonly answerLoad: AnswerLoad;
}

class RunningServer implements RpcServer {
  readonly #parts: RunningServerParts;
  readonly instances: readonly ServiceInstance[];
  readonly host: string;
  readonly context: ShuttleContext;
  #draining = false;
  #lastLoad: LoadSnapshot | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  /** Whether the last load report failed, so a failing registry is logged once, not every 500 ms. */
  #loadFailing = false;

  constructor(parts: RunningServerParts) {
    this.#parts = parts;
    this.instances = parts.instances;
    this.host = parts.host;
    this.context = parts.context;
  }

  get port(): number {
    return this.#parts.transports[0]!.port;
  }

  get endpoints(): readonly Endpoint[] {
    return this.#parts.endpoints;
  }

  get url(): string {
    return `shuttle://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get connections(): number {
    return this.#parts.transports.reduce((sum, transport) => sum + transport.connections, 0);
  }

  get refusedConnections(): readonly RefusedConnections[] {
    return this.#parts.refusals.counts();
  }

  get budgets(): readonly ServerBudget[] {
    const { transports, endpoints } = this.#parts;
    return transports.flatMap((transport, index) => (transport.budgets ?? []).map((use) => ({ transport: endpoints[index]!.protocol, ...use })));
  }

  get registry(): Registry | undefined {
    return this.#parts.registry;
  }

  get lastLoad(): LoadSnapshot | undefined {
    return this.#lastLoad;
  }

  /** Takes a load snapshot and publishes it (the registry coalesces frequent reports). */
  async publishLoad(): Promise<void> {
    const registry = this.#parts.registry;
    if (registry === undefined) return;
    const snapshot = this.snapshot();
    this.#lastLoad = snapshot;
    await registry.reportLoad(`${this.host}:${this.port}`, snapshot);
  }

  /** The provider's load now: the framework's own counts, completed by the `load()` callback. */
  snapshot(): LoadSnapshot {
    const own: LoadSnapshot = {
      running: this.#parts.transports.reduce((sum, transport) => sum + transport.running, 0),
      waiting: 0,
      waitingUncachedTokens: 0,
      kvUsage: 0,
      tokensPerSecond: 0,
      timestamp: Date.now(),
      draining: this.#draining,
    };
    let reported: unknown;
    try {
      reported = this.#parts.load?.();
    } catch (error) {
      // A failing load callback must not stop the provider; the framework's own counts still go out.
      this.#loadProblem(`load() threw: ${thrownMessage(error)}`);
      return own;
    }
    if (reported === undefined || reported === null) return own;
    // An async load() is refused below; its rejection must not end the process unhandled.
    settleQuietly(reported);
    // What consumers would refuse is not published (they would drop the whole snapshot and keep
    // an older one); the provider's own counts go out instead, and the problem is logged once.
    let merged: object | undefined;
    try {
      merged =
        typeof reported === 'object' && !(reported instanceof Promise)
          ? { ...own, ...(reported as object), timestamp: own.timestamp, draining: own.draining || (reported as { draining?: unknown }).draining === true }
          : undefined;
    } catch (error) {
      // An object whose getters (or a Proxy whose traps) throw when its figures are read.
      this.#loadProblem(`load() returned an object whose figures cannot be read: ${thrownMessage(error)}`);
      return own;
    }
    const checked = merged === undefined ? 'load() must return an object of load figures synchronously' : checkLoad(merged);
    if (typeof checked === 'string') {
      this.#loadProblem(checked);
      return own;
    }
    return checked.draining ? withoutCacheSummary(checked) : checked;
  }

  /** Logs, once per distinct problem (at most a few), what is wrong with the application's load figures. */
  #loadProblem(problem: string): void {
    if (this.#loadProblems.has(problem) || this.#loadProblems.size >= 8) return;
    this.#loadProblems.add(problem);
    this.#parts.log.warn({ problem }, "the load() callback's figures cannot be published; the provider's own counts are published instead");
  }
  readonly #loadProblems = new Set<string>();

  /**
   * Closes the transports, letting running calls finish within the drain time, and logs what
   * the drain waited for: at `debug` when every call finished, at `warn` with how many were
   * still running when the drain time ran out (their callers are told; see the transports).
   * The count is taken by a timer set just before the transports' own, so it fires first.
   */
  async #drainTransports(): Promise<void> {
    const { transports, drainTimeoutMs, log } = this.#parts;
    const running = runningCalls(transports);
    const started = monotonicNow();
    let cut = 0;
    const timer = setTimeout(() => (cut = runningCalls(transports)), drainTimeoutMs);
    try {
      await Promise.all(transports.map((transport) => transport.close({ timeoutMs: drainTimeoutMs })));
    } finally {
      clearTimeout(timer);
    }
    const waitedMs = Math.round(monotonicNow() - started);
    if (cut > 0) {
      log.warn(
        { running, cut, waitedMs, drainTimeoutMs },
        `drained in ${waitedMs} ms: ${cut} of the ${running} calls running at the stop were still running at drainTimeoutMs (${drainTimeoutMs} ms) and were cut off; their callers got UNAVAILABLE`,
      );
    } else {
      log.debug({ running, waitedMs }, `drained in ${waitedMs} ms: the ${running} calls running at the stop finished`);
    }
  }

  startLoadReports(): void {
    if (this.#parts.registry === undefined) return;
    this.#loadTimer = setInterval(() => {
      this.publishLoad().then(
        () => {
          if (this.#loadFailing) this.#parts.log.info('load reports reach the registry again');
          this.#loadFailing = false;
        },
        (error: unknown) => {
          if (!this.#loadFailing) this.#parts.log.warn({ err: error }, 'cannot publish load to the registry; consumers see stale load until it recovers');
          this.#loadFailing = true;
        },
      );
    }, this.#parts.loadIntervalMs);
    this.#loadTimer.unref();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#loadTimer);
      const registry = this.#parts.registry;
      // Draining first, so consumers stop picking this provider; then leave the registry; then
      // let the calls in flight finish; then end the registry session (an etcd lease revoke).
      this.#draining = true;
      this.#parts.answerLoad.invalidate();
      this.#parts.log.debug({ drainTimeoutMs: this.#parts.drainTimeoutMs }, 'draining');
      await this.publishLoad().catch(() => {});
      // A registry (a plugin's) that throws here must not keep the provider listening: leaving
      // the registry is tried, and the transports close whatever it did.
      await Promise.allSettled(this.instances.map((instance) => attempt(() => registry?.unregister(instance))));
      await this.#drainTransports();
      this.#parts.refusals.close();
      if (this.#parts.ownsRegistry) await attempt(() => registry?.close());
      this.#parts.log.debug('closed');
    })();
    return this.#closing;
  }
}

/** Calls running over every transport of `transports` now. */
function runningCalls(transports: readonly TransportServer[]): number {
  return transports.reduce((sum, transport) => sum + transport.running, 0);
}

/**
 * A draining snapshot without its prefix-cache summary: no balancer picks a draining provider,
 * so the summary would only make the snapshot large (up to 22 KiB where the figures take 200
 * bytes), and a reader that refuses large snapshots would miss the drain itself.
 */
function withoutCacheSummary(snapshot: LoadSnapshot): LoadSnapshot {
  if (snapshot.cachedPrefixes === undefined) return snapshot;
  const { cachedPrefixes: _summary, ...figures } = snapshot;
  return figures;
}

/** The default of `registerTimeoutMs`: how long a provider's registration may take. */
const REGISTRATION_TIMEOUT_MS = 30_000;

/** `registering`, or a rejection naming the registry once `timeoutMs` pass without it settling. */
async function withinRegistrationTime(registering: Promise<void>, registry: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new RpcError(RpcCode.DEADLINE_EXCEEDED, `registry ${registry} did not finish registering this provider within registerTimeoutMs (${timeoutMs} ms)`),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([registering, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What `run` returns or throws, as a promise that never rejects: for a plugin's cleanup calls. */
async function attempt(run: () => unknown): Promise<void> {
  try {
    await run();
  } catch {
    // The registry's own failure while the provider leaves it; nothing else depends on it.
  }
}

function checkLimits(value: unknown): ConnectionLimits {
  if (value === undefined) return DEFAULT_CONNECTION_LIMITS;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidOption('limits', value, `an object with ${Object.keys(DEFAULT_CONNECTION_LIMITS).join(', ')}`);
  checkKnownKeys('limits', value, Object.keys(DEFAULT_CONNECTION_LIMITS));
  const given = value as Partial<Record<keyof ConnectionLimits, unknown>>;
  const limits = { ...DEFAULT_CONNECTION_LIMITS };
  for (const key of Object.keys(DEFAULT_CONNECTION_LIMITS) as (keyof ConnectionLimits)[]) {
    // Byte budgets start at 64 KiB: below a socket's 16 KiB high-water mark a full write queue
    // would never signal 'drain', and no stream could make progress. The connection age and its
    // grace may be 0: no limit.
    // (maxDecodedBytesPerConnection is a byte budget too: "Bytes" anywhere in the name.)
    const [min, max] = key.endsWith('Ms')
      ? [key.startsWith('maxConnectionAge') ? 0 : 1, MAX_TIMER_MS]
      : key.includes('Bytes')
        ? [64 * 1024, 2 ** 40]
        : [1, 10_000_000];
    limits[key] = checkInt(`limits.${key}`, given[key], min, max, DEFAULT_CONNECTION_LIMITS[key]);
  }
  return limits;
}

function checkExtraTransports(value: unknown): readonly ExtraTransport[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalidOption('extraTransports', value, "an array of { transport, port }, e.g. [{ transport: 'grpc', port: 50051 }]");
  value.forEach((entry: unknown, index) => {
    if (entry === null || typeof entry !== 'object' || (entry as ExtraTransport).transport === undefined) {
      throw invalidOption(`extraTransports[${index}]`, entry, "{ transport, port }, e.g. { transport: 'grpc', port: 50051 }");
    }
    checkKnownKeys(`extraTransports[${index}]`, entry, EXTRA_TRANSPORT_KEYS);
  });
  return value as readonly ExtraTransport[];
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

/** Whether handlers run in call scopes; `'always'` arms them for the whole process now. */
function callScopesOf(value: unknown): boolean {
  if (value === 'always') {
    armCallScopes();
    return true;
  }
  if (value === undefined || typeof value === 'boolean') return value ?? true;
  throw invalidOption('callScopes', value, "true, false or 'always'");
}
