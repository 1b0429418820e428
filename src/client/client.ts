import { DEFAULT_BACKOFF, type BackoffOptions } from '../common/backoff.js';
import { checkBool, checkInt, checkKnownKeys, checkName, checkOptionalName, definedOnly, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';
import { HIGH_PRIORITY, MAX_PRIORITY } from '../admission/options.js';
import { armCallScopes } from '../call/call-scope.js';
import type { ClusterStrategy } from '../cluster/cluster.js';
import { DEFAULT_BREAKER, DEFAULT_EJECTION, ProviderHealth, type BreakerOptions, type EjectionOptions } from '../cluster/provider-health.js';
import { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from '../cluster/retry-budget.js';
import { resolveMock, type MockOptions } from './mock.js';
import { explainOrigin, loadConfig, type ConfigSource } from '../config/config.js';
import { getReferenceMetadata } from '../decorators/decorators.js';
import { isServiceDescriptor, type ServiceDescriptor } from '../decorators/descriptor.js';
import { buildFilters, type Filter } from '../filter/filter.js';
import { answerLoadListener } from './answer-load.js';
import { violationListener } from './violations.js';
import { doubtListener } from './doubts.js';
import type { Doubt } from '../loadbalance/believed.js';
import { createLogger, type Logger, type LogOption } from '../log/log.js';
import { freshestLoad } from '../loadbalance/load-score.js';
import type { LoadBalancer } from '../loadbalance/loadbalance.js';
import { createDescribedProxy } from '../proxy/described.js';
import { createProxy, type MethodCaller, type Proxied } from '../proxy/proxy.js';
import { DEFAULT_REGISTRY, isRegistry, resolveRegistry, type Registry } from '../registry/registry.js';
import { guardSerializer } from '../serializer/guard.js';
import { ThrottledWarning } from '../log/throttled-warning.js';
import { quietObserver } from '../common/observers.js';
import { DEFAULT_SERIALIZERS, SerializerSet, type Serializer } from '../serializer/serializer.js';
import { resolveContext, type ShuttleContext } from '../spi/context.js';
import type { ExtensionSpec } from '../common/extension-registry.js';
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_STREAM_WINDOW, MIN_STREAM_WINDOW, DEFAULT_MAX_UNSENT_BYTES } from '../transport/defaults.js';
import type { Transport } from '../transport/transport.js';
import { ConnectionPool, DEFAULT_POOL_LIMITS } from './connection-pool.js';
import { fdHeadroom, fdSoftLimit } from '../common/fd-limit.js';
import { Directory } from './directory.js';
import { ProviderStatsTable } from './provider-stats.js';
import { routingKeyExtractor } from './routing-key.js';
import { ServiceReference, type ServiceReferenceParts } from './service-reference.js';

import type { AttemptEvent, ProviderStatus, RouteEvent } from '../metrics/reports.js';
import { monotonicNow, toWallTime } from '../common/clock.js';

export type { AttemptEvent, ProviderStatus, RouteEvent } from '../metrics/reports.js';

/** Options of {@link createClient}; every key may also come from config (file, environment). */
export interface ClientOptions {
  /**
   * Where to find providers: a URL (`etcd://…`, `file://…`, `memory://…`, or
   * `shuttle://host:port[,…]` to dial providers directly), `{ type, options }` or an instance.
   * By default the embedded file registry of this host, where providers announce themselves
   * by default.
   */
  registry?: ExtensionSpec<Registry>;
  /** Serializer name for requests: `msgpack` (default), `json`, or one in `serializers`. */
  serializer?: string;
  /** Serializers besides msgpack and json: names, `{ type, options }` or instances. */
  serializers?: readonly ExtensionSpec<Serializer>[];
  /** Load balancer; `random` (weighted) by default. */
  loadbalance?: ExtensionSpec<LoadBalancer>;
  /** Cluster strategy; `failover` (retry elsewhere when safe) by default. */
  cluster?: ExtensionSpec<ClusterStrategy>;
  /**
   * Retry throttling (gRFC A6): a bucket of `maxTokens` (100) that starts full; a provider-side
   * failure costs 1, a success earns `ratio` (0.1); retries and hedges only while more than half
   * remains. `false`: no limit.
   */
  retryBudget?: Partial<RetryBudgetOptions> | false;
  /** Per-provider circuit breakers (opossum); `false` turns them off. */
  circuitBreaker?: Partial<BreakerOptions> | false;
  /** Outlier ejection; `false` turns it off. */
  outlierEjection?: Partial<EjectionOptions> | false;
  /**
   * Most calls this consumer keeps in flight to one provider (Dubbo's `actives`). A call over it
   * is refused locally with RESOURCE_EXHAUSTED before anything is sent (so failover may try
   * another provider). Unlimited by default.
   */
  maxCallsPerProvider?: number;
  /**
   * Urgent calls: those whose priority (the `shuttle-priority` metadata, 0–9, which the gateway
   * sets from `x-priority`) is at least this go to the providers where this consumer has the
   * fewest prompt tokens still waiting for their first answer, and the balancer picks among
   * those: an urgent generation is not sent to a worker busy computing other prompts when
   * another is not. 5 (`high`) by default; `false`: no such rule; 1 or less makes every call
   * urgent (1 is the priority of a call that names none).
   */
  urgentPriority?: number | false;
  /** Transport; `tcp` by default. */
  transport?: ExtensionSpec<Transport>;
  /** Consumer filters besides the defaults; `-name` removes a default. */
  filters?: readonly ExtensionSpec<Filter>[];
  /** Token sent with every call (the default `token` filter). */
  token?: string;
  /** Default call timeout in ms; 30 s by default. */
  timeoutMs?: number;
  /** How long a connect may take before calls fail UNAVAILABLE; 3 s by default. */
  connectTimeoutMs?: number;
  /** Idle time after which a HEARTBEAT is sent; 10 s by default. */
  heartbeatIntervalMs?: number;
  /** Time without any answer to a HEARTBEAT before the connection is declared dead; 5 s by default. */
  heartbeatTimeoutMs?: number;
  /**
   * Largest frame accepted from a provider, and the largest request sent (a larger one fails
   * RESOURCE_EXHAUSTED before it leaves: the provider would refuse it and close the connection
   * with every call on it); 8 MiB by default, as on providers.
   */
  maxFrameBytes?: number;
  /** Reconnect backoff (gRPC defaults with a 30 s cap). */
  reconnect?: Partial<BackoffOptions>;
  /**
   * Connections to providers this consumer holds open at once (each is a file descriptor).
   * Past it, the least recently used connection with no call in flight is closed to make room;
   * when every one has calls, a call that needs a new connection fails RESOURCE_EXHAUSTED,
   * never sent. 4,096 by default, and at most half of what the open-file limit leaves after
   * its headroom (409 under `ulimit -n 1024`).
   */
  maxConnections?: number;
  /** A connection with no call in flight and none sent for this long is closed; 5 min by default. */
  idleTimeoutMs?: number;
  /**
   * Connects (tcp and grpc) under way at once; more wait for a slot, and while all are taken calls go to
   * providers already connected when there are any. 64 by default.
   */
  maxConnecting?: number;
  /** Flow-control window per stream: bytes a provider may send ahead of the reader; 64 KiB by default. */
  streamWindowBytes?: number;
  /**
   * Bytes of requests one connection may hold unsent (the provider is not reading them); 4 MiB
   * by default. Above it new calls on that connection fail at once, never sent, so they go to
   * another provider.
   */
  maxUnsentBytes?: number;
  /** How long `close()` waits for calls in flight; 5 s by default. */
  closeTimeoutMs?: number;
  /** Called with every load-balancing decision (policy, branch, provider), for metrics and logs; what it throws is ignored. */
  onRoute?: (event: RouteEvent) => void;
  /**
   * Called when each attempt on a provider settles (a stream: when it opens), with the
   * provider and the outcome code; for per-provider metrics (`metrics.attempt`). What it
   * throws is ignored.
   */
  onAttempt?: (event: AttemptEvent) => void;
  /**
   * Called when a stream that opened (its attempt reported OK to `onAttempt`) breaks off
   * with an error other than the reader's own cancel, e.g. its provider died mid-answer; the
   * event has `midStream: true`. For per-provider metrics (`metrics.attempt` takes it too).
   */
  onStreamBreak?: (event: AttemptEvent) => void;
  /**
   * Logging: a pino logger, `{ level, stream }` for one of its own (level `info`, or
   * `SHUTTLE_LOG_LEVEL`; standard error), or `false`. Silent at `info` while all is well;
   * breakers opening and providers ejected are warnings.
   */
  log?: LogOption;
  /** Plugin modules to load into this client's context. */
  plugins?: readonly string[];
  /** The extension context to use; a new one (built-ins + plugins) by default. */
  context?: ShuttleContext;
  /** Where file and environment configuration come from; `false` reads neither. */
  config?: ConfigSource | false;
}

/** Options of {@link RpcClient.proxy} and of `@RpcReference`. */
export interface ReferenceOptions {
  /** Provider version to call; empty matches any. */
  version?: string;
  /** Provider group to call; empty means the default group, `*` any. */
  group?: string;
  /** Default timeout of this reference's calls, ms. */
  timeoutMs?: number;
  /** Serializer name for this reference. */
  serializer?: string;
  /**
   * Call these providers directly (`shuttle://host:port[,…]`) instead of the client's registry.
   * A client keeps the lists of the 256 urls called most recently; an older one is made again
   * at its reference's next call.
   */
  url?: string;
  /** Load balancer for this reference. */
  loadbalance?: ExtensionSpec<LoadBalancer>;
  /** Cluster strategy for this reference. */
  cluster?: ExtensionSpec<ClusterStrategy>;
  /** Retries a failover may make for this reference's calls (when safe); the strategy's default otherwise. */
  retries?: number;
  /** A fallback for failed calls (`mode: 'fail'`) or instead of calling (`mode: 'force'`); see mock.ts. */
  mock?: MockOptions;
  /**
   * Where balancers find the routing key in a request when the call gives none: a dotted path
   * (`'prompt'`, `'messages'`, `'input.text'`; an array of strings or of `{ content }` is
   * joined) or a function. By default the request itself when it is a string, else its
   * `prompt` field when that is a string.
   */
  routingKey?: string | ((request: unknown) => string | undefined);
  /** Every call of this reference waits for a provider to be listed when none is (see CallOptions.waitForReady); false by default. */
  waitForReady?: boolean;
}

const CLIENT_KEYS = optionKeys<ClientOptions>()([
  'registry',
  'serializer',
  'serializers',
  'loadbalance',
  'cluster',
  'transport',
  'filters',
  'token',
  'timeoutMs',
  'connectTimeoutMs',
  'heartbeatIntervalMs',
  'heartbeatTimeoutMs',
  'maxFrameBytes',
  'reconnect',
  'maxConnections',
  'idleTimeoutMs',
  'maxConnecting',
  'streamWindowBytes',
  'maxUnsentBytes',
  'closeTimeoutMs',
  'onRoute',
  'onAttempt',
  'onStreamBreak',
  'retryBudget',
  'circuitBreaker',
  'outlierEjection',
  'maxCallsPerProvider',
  'urgentPriority',
  'log',
  'plugins',
  'context',
  'config',
]);
const REFERENCE_KEYS = optionKeys<ReferenceOptions>()([
  'version',
  'group',
  'timeoutMs',
  'serializer',
  'url',
  'loadbalance',
  'cluster',
  'retries',
  'mock',
  'routingKey',
  'waitForReady',
]);
/**
 * Directories of references with a `url` kept at once. Each costs a subscription, its provider
 * list and the connections it keeps live (about 16 KB with one address): a consumer that calls
 * workers by url, whose addresses change, made one per address ever called and kept them all
 * (10,000 urls held 166 MB). Past it, the least recently called one is closed; a reference
 * whose directory was closed gets a fresh one at its next call.
 */
const MAX_URL_DIRECTORIES = 256;

/** How often a directory logs what its registry sent that was left out (the rest are counted). */
const REGISTRY_WARN_EVERY_MS = 10_000;

const RECONNECT_KEYS = optionKeys<BackoffOptions>()(['initialMs', 'maxMs', 'multiplier', 'jitter']);

/** The `urgentPriority` option: a priority 0–9 (`high` by default), or undefined for `false`. */
function checkUrgentPriority(value: unknown): number | undefined {
  if (value === false) return undefined;
  if (value === undefined) return HIGH_PRIORITY;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_PRIORITY)
    throw invalidOption('urgentPriority', value, `an integer from 0 to ${MAX_PRIORITY}, or false`);
  return value;
}

/** A consumer: makes typed proxies and owns their connections. */
export interface RpcClient {
  /** The extension context this client resolves names in. */
  readonly context: ShuttleContext;
  /**
   * A typed stub for the service named `service`, typed by `T`. A method's kind is not known
   * from a name, so a call starts as a stream when it is iterated in the tick it is made and as
   * a unary call otherwise. Proxies for equal options share one provider directory.
   */
  proxy<T>(service: string, options?: ReferenceOptions): Proxied<T>;
  /**
   * A typed stub for the service of `descriptor`: typed by its interface, with exactly its
   * methods, each called in the kind the descriptor declares (a streaming call opens when it is
   * first iterated, whenever that is).
   */
  proxy<T>(descriptor: ServiceDescriptor<T>, options?: ReferenceOptions): Proxied<T>;
  /** Fills every `@RpcReference` property of `target` with a proxy; returns `target`. */
  inject<T extends object>(target: T): T;
  /**
   * What this client sees of the providers of every service it has a proxy for, right now:
   * each provider's record and live load, this client's calls in flight to it, its average
   * latency, its connection, breaker and ejection state. The admin endpoint serves it as
   * `/providers`; the dashboard draws it.
   */
  providers(): ProviderStatus[];
  /**
   * Resolves once the provider list of every proxy made so far has loaded from the registry
   * (a proxy otherwise subscribes on its first call), so {@link providers} is complete; rejects
   * UNAVAILABLE, naming the registry, when it cannot be reached.
   */
  ready(): Promise<void>;
  /** Stops new calls, waits for calls in flight (up to `closeTimeoutMs`), closes connections. */
  close(): Promise<void>;
}

/** Creates a consumer. Nothing connects until the first call. */
export async function createClient(options: ClientOptions = {}): Promise<RpcClient> {
  // Before the first await: a client made inside a handler joins that handler's call scope.
  armCallScopes();
  if (options === null || typeof options !== 'object') throw invalidOption('client options', options, 'an object');
  checkKnownKeys('client', options, CLIENT_KEYS);
  const fileConfig = options.config === false ? undefined : await loadConfig(options.config);
  checkKnownKeys(
    `client config${fileConfig?.file ? ` in ${fileConfig.file}` : ''}`,
    fileConfig?.client ?? {},
    CLIENT_KEYS.filter((key) => key !== 'context' && key !== 'config'),
  );
  const merged = { registry: fileConfig?.registry, plugins: fileConfig?.plugins, ...fileConfig?.client, ...definedOnly(options) } as ClientOptions;
  try {
    const context = await resolveContext(merged.context, merged.plugins, options.config === false ? undefined : options.config?.cwd);
    return new Client(merged, context);
  } catch (error) {
    throw explainOrigin(error, fileConfig, 'client', definedOnly(options));
  }
}

class Client implements RpcClient {
  readonly context: ShuttleContext;
  readonly #registry: Registry;
  readonly #ownsRegistry: boolean;
  readonly #serializers: SerializerSet;
  readonly #serializer: Serializer;
  readonly #balancer: LoadBalancer;
  readonly #cluster: ClusterStrategy;
  readonly #filters: readonly Filter[];
  readonly #timeoutMs: number;
  readonly #closeTimeoutMs: number;
  readonly #pool: ConnectionPool;
  readonly #stats = new ProviderStatsTable();
  readonly #health: ProviderHealth;
  readonly #budget: RetryBudget;
  readonly #maxCallsPerProvider: number;
  readonly #urgentPriority: number | undefined;
  readonly #onRoute: ((event: RouteEvent) => void) | undefined;
  readonly #onAttempt: ((event: AttemptEvent) => void) | undefined;
  readonly #onStreamBreak: ((event: AttemptEvent) => void) | undefined;
  /** Logs each provider figure not believed, once per provider and figure. */
  readonly #onDoubt: (doubt: Doubt) => void;
  readonly #log: Logger;
  readonly #directories = new Map<string, Directory>();
  /** Direct `shuttle://` registries of references with a `url`, by url. */
  readonly #directRegistries = new Map<string, Registry>();
  /** The directory keys of references with a `url`, least recently called first, with their url. */
  readonly #urlDirectories = new Map<string, string>();
  #closed = false;

  constructor(options: ClientOptions, context: ShuttleContext) {
    this.context = context;
    const ext = context.extensions;
    if (options.serializers !== undefined && !Array.isArray(options.serializers)) {
      throw invalidOption('serializers', options.serializers, 'an array of serializer names, { type, options } or instances');
    }
    const registrySpec = options.registry ?? DEFAULT_REGISTRY;
    this.#registry = resolveRegistry(registrySpec, ext.registry);
    this.#ownsRegistry = !isRegistry(registrySpec);
    const list = [...DEFAULT_SERIALIZERS, ...(options.serializers ?? [])].map((spec, index) => ext.serializer.create(spec, `serializers[${index}]`));
    // A serializer chosen by name needs no separate `serializers` entry when it takes no options.
    const chosen = options.serializer ?? 'msgpack';
    if (typeof chosen === 'string' && !list.some((serializer) => serializer.name === chosen) && ext.serializer.has(chosen)) {
      list.push(ext.serializer.create(chosen, 'serializer'));
    }
    // A plugin's serializer is held to the encode contract (serializer/guard.ts); built-ins are not wrapped.
    this.#serializers = new SerializerSet(list.map(guardSerializer));
    this.#serializer = this.#serializers.byName(chosen);
    this.#balancer = ext.loadbalance.create(options.loadbalance ?? 'random', 'loadbalance');
    this.#cluster = ext.cluster.create(options.cluster ?? 'failover', 'cluster');
    this.#maxCallsPerProvider = checkInt('maxCallsPerProvider', options.maxCallsPerProvider, 1, 1_000_000, Number.MAX_SAFE_INTEGER);
    this.#urgentPriority = checkUrgentPriority(options.urgentPriority);
    this.#budget = new RetryBudget(
      options.retryBudget === false ? false : { ...DEFAULT_RETRY_BUDGET, ...checkObject('retryBudget', options.retryBudget, RETRY_BUDGET_RANGES) },
    );
    const log = createLogger(options.log, 'client');
    this.#log = log;
    this.#onDoubt = doubtListener(log);
    this.#health = new ProviderHealth(
      options.circuitBreaker === false ? undefined : { ...DEFAULT_BREAKER, ...checkObject('circuitBreaker', options.circuitBreaker, BREAKER_RANGES) },
      options.outlierEjection === false
        ? undefined
        : checkEjection({ ...DEFAULT_EJECTION, ...checkObject('outlierEjection', options.outlierEjection, EJECTION_RANGES) }),
      {
        breaker: (provider, state) =>
          state === 'open'
            ? log.warn({ provider }, 'circuit breaker opened: no calls to this provider until a probe succeeds')
            : log.info({ provider, state }, `circuit breaker ${state}`),
        ejected: (provider, untilMs, times) => log.warn({ provider, forMs: untilMs - monotonicNow(), times }, 'provider ejected after consecutive failures'),
        methodEjected: (provider, method, untilMs, times) =>
          log.warn({ provider, method, forMs: untilMs - monotonicNow(), times }, 'provider ejected for one method after consecutive failures of that method'),
      },
    );
    this.#filters = buildFilters('consumer', options.filters, ext.filter, { token: options.token === undefined ? {} : { token: options.token } });
    this.#timeoutMs = checkInt('timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS, 30_000);
    this.#closeTimeoutMs = checkInt('closeTimeoutMs', options.closeTimeoutMs, 0, MAX_TIMER_MS, 5000);
    if (options.onRoute !== undefined && typeof options.onRoute !== 'function') throw invalidOption('onRoute', options.onRoute, 'a function (event) => void');
    // Told from inside each call: what it throws or rejects with is dropped (common/observers.ts).
    this.#onRoute = quietObserver(options.onRoute);
    if (options.onAttempt !== undefined && typeof options.onAttempt !== 'function')
      throw invalidOption('onAttempt', options.onAttempt, 'a function (event) => void');
    this.#onAttempt = quietObserver(options.onAttempt);
    if (options.onStreamBreak !== undefined && typeof options.onStreamBreak !== 'function')
      throw invalidOption('onStreamBreak', options.onStreamBreak, 'a function (event) => void');
    this.#onStreamBreak = quietObserver(options.onStreamBreak);
    const transport = ext.transport.create(options.transport ?? 'tcp', 'transport');
    this.#pool = new ConnectionPool(
      transport,
      {
        connectTimeoutMs: checkInt('connectTimeoutMs', options.connectTimeoutMs, 1, MAX_TIMER_MS, 3000),
        heartbeatIntervalMs: checkInt('heartbeatIntervalMs', options.heartbeatIntervalMs, 10, MAX_TIMER_MS, 10_000),
        heartbeatTimeoutMs: checkInt('heartbeatTimeoutMs', options.heartbeatTimeoutMs, 10, MAX_TIMER_MS, 5000),
        maxFrameBytes: checkInt('maxFrameBytes', options.maxFrameBytes, 1024, 2 ** 32 - 1, DEFAULT_MAX_FRAME_BYTES),
        backoff: resolveBackoff(options.reconnect),
        streamWindowBytes: checkInt('streamWindowBytes', options.streamWindowBytes, MIN_STREAM_WINDOW, 2 ** 31 - 1, DEFAULT_STREAM_WINDOW),
        maxUnsentBytes: checkInt('maxUnsentBytes', options.maxUnsentBytes, 64 * 1024, 2 ** 40, DEFAULT_MAX_UNSENT_BYTES),
        onLoad: answerLoadListener(this.#stats, log),
        onViolation: violationListener(log),
      },
      {
        maxConnections: checkInt('maxConnections', options.maxConnections, 1, 1_000_000, defaultMaxConnections()),
        idleTimeoutMs: checkInt('idleTimeoutMs', options.idleTimeoutMs, 10, MAX_TIMER_MS, DEFAULT_POOL_LIMITS.idleTimeoutMs),
        maxConnecting: checkInt('maxConnecting', options.maxConnecting, 1, 100_000, DEFAULT_POOL_LIMITS.maxConnecting),
      },
    );
  }

  proxy<T>(target: string | ServiceDescriptor<T>, options: ReferenceOptions = {}): Proxied<T> {
    if (this.#closed) throw new TypeError('shuttle-rpc: client is closed');
    const descriptor = isServiceDescriptor(target) ? (target as ServiceDescriptor<T>) : undefined;
    const service = checkName('service', descriptor?.name ?? target);
    if (options === null || typeof options !== 'object') throw invalidOption('reference options', options, 'an object');
    checkKnownKeys(`reference ${service}`, options, REFERENCE_KEYS);
    const version = checkOptionalName('version', options.version);
    const group = checkOptionalName('group', options.group);
    const url = options.url;
    // A url's directory is made now, so a bad url fails here rather than at the first call.
    const directory = url === undefined ? this.#directory('', this.#registry, service, version, group) : this.#urlDirectory(url, service, version, group);
    const ext = this.context.extensions;
    const parts: ServiceReferenceParts = {
      service,
      version,
      group,
      timeoutMs: checkInt('timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS, this.#timeoutMs),
      serializer: options.serializer === undefined ? this.#serializer : this.#serializers.byName(options.serializer),
      balancer: options.loadbalance === undefined ? this.#balancer : ext.loadbalance.create(options.loadbalance, `reference ${service} loadbalance`),
      cluster: options.cluster === undefined ? this.#cluster : ext.cluster.create(options.cluster, `reference ${service} cluster`),
      filters: this.#filters,
      directory,
      pool: this.#pool,
      stats: this.#stats,
      health: this.#health,
      maxCallsPerProvider: this.#maxCallsPerProvider,
      urgentPriority: this.#urgentPriority,
      budget: this.#budget,
      retries: checkInt(`reference ${service} retries`, options.retries, 0, 10),
      mock: resolveMock(options.mock, `reference ${service} mock`),
      routingKey: routingKeyExtractor(options.routingKey, `reference ${service} routingKey`),
      waitForReady: checkBool(`reference ${service} waitForReady`, options.waitForReady, false),
      onRoute: this.#onRoute,
      onAttempt: this.#onAttempt,
      onStreamBreak: this.#onStreamBreak,
      onDoubt: this.#onDoubt,
      isClosed: () => this.#closed,
    };
    if (url !== undefined) {
      // Looked up at each use: the directory may have been closed to make room since (see MAX_URL_DIRECTORIES).
      Object.defineProperty(parts, 'directory', { get: () => this.#urlDirectory(url, service, version, group), enumerable: true });
    }
    const reference = new ServiceReference(parts);
    const caller: MethodCaller = (method, request, callOptions, mode) => reference.call(method, request, callOptions, mode);
    return descriptor === undefined ? createProxy<T>(service, caller) : createDescribedProxy(descriptor, caller);
  }

  async ready(): Promise<void> {
    await Promise.all([...this.#directories.values()].map((directory) => directory.ready()));
  }

  providers(): ProviderStatus[] {
    const now = monotonicNow();
    const out: ProviderStatus[] = [];
    for (const directory of this.#directories.values()) {
      for (const instance of directory.instances) {
        const address = `${instance.host}:${instance.port}`;
        const ejection = this.#health.ejection(address, now);
        out.push({
          service: instance.service,
          version: instance.version,
          group: instance.group,
          address,
          protocol: instance.protocol,
          weight: instance.weight,
          metadata: instance.metadata,
          load: freshestLoad({ instance, stats: this.#stats.get(address) }),
          inFlight: this.#pool.inFlight(address),
          averageLatencyMs: this.#stats.get(address).averageLatencyMs(now),
          connection: this.#pool.state(address),
          breaker: this.#health.breakerState(address) ?? 'closed',
          ejected: ejection.ejected,
          // Shown to people: on the wall clock.
          ejectedUntil: ejection.untilMs === undefined ? undefined : toWallTime(ejection.untilMs, now),
        });
      }
    }
    return out;
  }

  inject<T extends object>(target: T): T {
    for (const reference of getReferenceMetadata(target)) {
      Object.defineProperty(target, reference.property, {
        value:
          reference.descriptor === undefined
            ? this.proxy(reference.service, reference.options as ReferenceOptions)
            : this.proxy(reference.descriptor, reference.options as ReferenceOptions),
        enumerable: true,
        writable: false,
        configurable: true,
      });
    }
    return target;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const directory of this.#directories.values()) directory.close();
    await this.#pool.close({ graceful: true, timeoutMs: this.#closeTimeoutMs });
    this.#health.close();
    const owned = [...this.#directRegistries.values(), ...(this.#ownsRegistry ? [this.#registry] : [])];
    await Promise.all(owned.map((registry) => registry.close().catch(() => {})));
  }

  #direct(url: string): Registry {
    let registry = this.#directRegistries.get(url);
    if (registry === undefined) {
      if (typeof url !== 'string' || !url.startsWith('shuttle://')) throw invalidOption('url', url, 'shuttle://host:port[,host:port]');
      registry = resolveRegistry(url, this.context.extensions.registry, 'url');
      this.#directRegistries.set(url, registry);
    }
    return registry;
  }

  /**
   * The directory of a reference with `url`, made when there is none (again, after it was
   * closed to make room) and marked as the most recently called; past
   * {@link MAX_URL_DIRECTORIES}, closes the least recently called one.
   */
  #urlDirectory(url: string, service: string, version: string, group: string): Directory {
    const key = directoryKey(url, service, version, group);
    if (this.#urlDirectories.delete(key)) {
      this.#urlDirectories.set(key, url);
      return this.#directories.get(key)!;
    }
    if (this.#closed) {
      // A call that reaches here after close (held by a filter) finds no provider; nothing is opened for it.
      const closed = new Directory(
        this.#registry,
        { service, version, group },
        this.#pool.protocol,
        () => {},
        () => {},
      );
      closed.close();
      return closed;
    }
    const directory = this.#directory(url, this.#direct(url), service, version, group);
    this.#urlDirectories.set(key, url);
    if (this.#urlDirectories.size > MAX_URL_DIRECTORIES) this.#closeUrlDirectory(this.#urlDirectories.keys().next().value!);
    return directory;
  }

  /** Closes the url directory `key`, its direct registry when no other directory uses it, and the connections no directory lists any more. */
  #closeUrlDirectory(key: string): void {
    const url = this.#urlDirectories.get(key)!;
    this.#urlDirectories.delete(key);
    this.#directories.get(key)?.close();
    this.#directories.delete(key);
    if (![...this.#urlDirectories.values()].includes(url)) {
      const registry = this.#directRegistries.get(url);
      this.#directRegistries.delete(url);
      registry?.close().catch(() => {});
    }
    this.#prune();
  }

  #directory(registryKey: string, registry: Registry, service: string, version: string, group: string): Directory {
    const key = directoryKey(registryKey, service, version, group);
    let directory = this.#directories.get(key);
    if (directory === undefined) {
      // What a registry sends that is left out is logged, at most once per interval per service.
      const warnings = new ThrottledWarning(this.#log, REGISTRY_WARN_EVERY_MS, '');
      const created: Directory = new Directory(
        registry,
        { service, version, group },
        this.#pool.protocol,
        () => {
          // Load reports also land here, several times a second: build the entry only when asked for.
          if (this.#log.isLevelEnabled('debug')) {
            this.#log.debug({ service, providers: created.instances.map((instance) => `${instance.host}:${instance.port}`) }, 'providers changed');
          }
          this.#prune();
        },
        (problem) => warnings.warn(problem),
      );
      directory = created;
      this.#directories.set(key, directory);
    }
    return directory;
  }

  /** Closes connections to providers that left every directory, and forgets their statistics and health. */
  #prune(): void {
    const live = new Set<string>();
    for (const directory of this.#directories.values()) {
      for (const instance of directory.instances) live.add(`${instance.host}:${instance.port}`);
    }
    this.#pool.retainOnly(live);
    this.#stats.retainOnly(live);
    this.#health.retainOnly(live);
  }
}

/** A directory's key in a client: its registry (the url of a reference with one, else empty), service, version and group. */
function directoryKey(registryKey: string, service: string, version: string, group: string): string {
  return `${registryKey}\u0000${service}\u0000${version}\u0000${group}`;
}

/** The values a numeric option may take: from `min` to `max`, whole numbers only when `integer`. */
interface Range {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
}
const counted = (min = 1): Range => ({ min, max: 1_000_000_000, integer: true });
const millis: Range = { min: 1, max: MAX_TIMER_MS, integer: true };
const percent: Range = { min: 0, max: 100, integer: false };

const BREAKER_RANGES: Readonly<Record<keyof typeof DEFAULT_BREAKER, Range>> = {
  errorThresholdPercentage: { min: 1, max: 100, integer: false },
  volumeThreshold: counted(),
  resetTimeoutMs: millis,
  rollingWindowMs: { min: 10, max: MAX_TIMER_MS, integer: true },
  probeTimeoutMs: millis,
};
const EJECTION_RANGES: Readonly<Record<keyof typeof DEFAULT_EJECTION, Range>> = {
  consecutiveFailures: counted(),
  baseMs: millis,
  maxMs: millis,
  maxPercent: percent,
};
// gRFC A6's bounds (the RetryBudget checks them again).
const RETRY_BUDGET_RANGES: Readonly<Record<keyof typeof DEFAULT_RETRY_BUDGET, Range>> = {
  ratio: { min: 0.001, max: 10, integer: false },
  maxTokens: { min: 1, max: 1000, integer: false },
};

/** Checks an options object's keys and each numeric value against its range; undefined gives {}. */
function checkObject(key: string, value: unknown, ranges: Readonly<Record<string, Range>>): Record<string, number> {
  const known = Object.keys(ranges);
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidOption(key, value, `an object with ${known.join(', ')}, or false`);
  checkKnownKeys(key, value, known);
  for (const [name, entry] of Object.entries(value)) {
    const { min, max, integer } = ranges[name]!;
    if (typeof entry !== 'number' || !Number.isFinite(entry) || entry < min || entry > max || (integer && !Number.isInteger(entry))) {
      throw invalidOption(`${key}.${name}`, entry, `${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
  }
  return value as Record<string, number>;
}

/** An ejection's longest time must be at least its first. */
function checkEjection(options: typeof DEFAULT_EJECTION): typeof DEFAULT_EJECTION {
  if (options.maxMs < options.baseMs)
    throw invalidOption('outlierEjection.maxMs', options.maxMs, `an integer from baseMs (${options.baseMs}) to ${MAX_TIMER_MS}`);
  return options;
}

/**
 * {@link DEFAULT_POOL_LIMITS}' connections, or fewer under a low open-file limit: half of what
 * it leaves after the headroom for files and pipes, the other half for what the process serves
 * (a gateway's or a provider's own listeners).
 */
function defaultMaxConnections(): number {
  const soft = fdSoftLimit();
  if (soft === undefined) return DEFAULT_POOL_LIMITS.maxConnections;
  return Math.max(1, Math.min(DEFAULT_POOL_LIMITS.maxConnections, Math.floor((soft - fdHeadroom(soft)) / 2)));
}

function resolveBackoff(option: Partial<BackoffOptions> | undefined): BackoffOptions {
  if (option === undefined) return DEFAULT_BACKOFF;
  if (option === null || typeof option !== 'object') throw invalidOption('reconnect', option, 'an object');
  checkKnownKeys('reconnect', option, RECONNECT_KEYS);
  const merged = { ...DEFAULT_BACKOFF, ...option };
  checkInt('reconnect.initialMs', merged.initialMs, 1, MAX_TIMER_MS);
  checkInt('reconnect.maxMs', merged.maxMs, merged.initialMs, MAX_TIMER_MS);
  if (typeof merged.multiplier !== 'number' || !(merged.multiplier >= 1 && merged.multiplier <= 10)) {
    throw invalidOption('reconnect.multiplier', merged.multiplier, 'a number from 1 to 10');
  }
  if (typeof merged.jitter !== 'number' || !(merged.jitter >= 0 && merged.jitter <= 1)) {
    throw invalidOption('reconnect.jitter', merged.jitter, 'a number from 0 to 1');
  }
  return merged;
}
