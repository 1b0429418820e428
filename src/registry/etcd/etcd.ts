import { Etcd3 } from 'etcd3';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { ExtensionFactory } from '../../spi/extension-registry.js';
import { instanceAddress, matchesQuery, parseInstance, parseLoad, type LoadSnapshot, type ServiceInstance, type ServiceQuery } from '../instance.js';
import type { InstancesListener, Registry, Subscription } from '../registry.js';
import { EtcdChannelPool } from './channel-pool.js';
import { addressOfLoadKey, loadKey, loadPrefix, serviceKey, servicePrefix } from './keys.js';
import { parseEtcdOptions, type EtcdSettings } from './options.js';
import { PrefixMirror } from './prefix-mirror.js';
import { ProviderSession } from './provider-session.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'etcd';

/** `etcd://host:port[,host:port][/prefix]`, or `{ type: 'etcd', options: { url, … } }` (see options.ts). */
export const createEtcdRegistry: ExtensionFactory<Registry> = (options) => new EtcdRegistry(parseEtcdOptions(options));

interface Subscriber {
  readonly query: ServiceQuery;
  readonly listener: InstancesListener;
}

/**
 * The production registry, on etcd through the etcd3 client. Providers write one key per
 * service record and one load key, all on one lease (provider-session.ts); consumers mirror
 * the service's prefix and the load prefix with list + watch (prefix-mirror.ts) and get the
 * records with the latest load attached. Key layout: keys.ts; design notes: docs/REGISTRY.md.
 */
export class EtcdRegistry implements Registry {
  readonly name = 'etcd';
  readonly settings: EtcdSettings;
  readonly #client: Etcd3;
  readonly #channels = new EtcdChannelPool();
  #session: ProviderSession | undefined;
  /** Service name -> mirror of its records, shared by every subscription to that service. */
  readonly #services = new Map<string, { mirror: PrefixMirror; ready: Promise<void> }>();
  #loads: { mirror: PrefixMirror; ready: Promise<void> } | undefined;
  readonly #subscribers = new Set<Subscriber>();
  /** Parsed records by key and raw value, so a watch event re-parses only what changed. */
  readonly #parsed = new Map<string, { raw: string; instance: ServiceInstance | undefined }>();
  /** The latest load per address, with its local arrival time. */
  readonly #loadByAddress = new Map<string, { raw: string; load: LoadSnapshot | undefined }>();
  #pendingLoad: { address: string; load: LoadSnapshot } | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #lastLoadWrite = 0;
  #closed = false;

  constructor(settings: EtcdSettings) {
    this.settings = settings;
    const requestTimeoutMs = settings.requestTimeoutMs;
    // No retries or circuit breakers inside the client: a breaker that stays open for 5 s after
    // an outage would delay re-registration; this registry has its own retry loops.
    // `async`: the client calls execute() with functions that throw synchronously on purpose
    // (to report a failure) and expects a rejected promise, never a synchronous throw.
    const passThrough = { execute: async (fn: (context: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };
    this.#client = new Etcd3({
      hosts: settings.hosts,
      dialTimeout: requestTimeoutMs,
      grpcOptions: this.#channels.channelOptions(),
      ...(settings.auth === undefined ? {} : { auth: settings.auth }),
      ...(settings.tls === undefined ? {} : { credentials: settings.tls }),
      // Watches reconnect after 100 ms, doubling to at most 1 s (the client's default grows to
      // 30 s, far too slow to notice a registry that came back).
      faultHandling: { host: () => passThrough as never, global: passThrough as never, watchBackoff: backoff(100) as never },
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    });
  }

  /** Leases granted by this provider so far (1 normally; more after re-registrations). */
  get leaseGenerations(): number {
    return this.#session?.generations ?? 0;
  }

  async register(instance: ServiceInstance): Promise<void> {
    await this.#providerSession().put(serviceKey(this.settings.prefix, instance), JSON.stringify(stripLoad(instance)));
  }

  async unregister(instance: ServiceInstance): Promise<void> {
    await this.#providerSession().delete(serviceKey(this.settings.prefix, instance));
  }

  /**
   * Publishes a load snapshot, at most once per `loadIntervalMs` (the latest one wins); a
   * draining snapshot is written at once, because consumers must stop picking this provider
   * now. Failures during an outage are dropped: the next report, or the re-registration after
   * the outage, writes the current load.
   */
  async reportLoad(address: string, load: LoadSnapshot): Promise<void> {
    this.#pendingLoad = { address, load };
    const wait = this.#lastLoadWrite + this.settings.loadIntervalMs - Date.now();
    if (load.draining || wait <= 0) {
      clearTimeout(this.#loadTimer);
      this.#loadTimer = undefined;
      await this.#writeLoad();
    } else if (this.#loadTimer === undefined) {
      this.#loadTimer = setTimeout(() => {
        this.#loadTimer = undefined;
        void this.#writeLoad();
      }, wait);
      this.#loadTimer.unref();
    }
  }

  async subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription> {
    try {
      await Promise.all([this.#serviceMirror(query.service).ready, this.#loadMirror().ready]);
    } catch (error) {
      this.#services.delete(query.service);
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is unreachable: ${(error as Error).message}`, { cause: error });
    }
    const subscriber: Subscriber = { query, listener };
    this.#subscribers.add(subscriber);
    listener(this.#matching(query));
    return { close: () => this.#subscribers.delete(subscriber) };
  }

  async services(): Promise<string[]> {
    const root = `${this.settings.prefix}/services/`;
    let keys: string[];
    try {
      keys = await this.#client.getAll().prefix(root).keys();
    } catch (error) {
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is unreachable: ${(error as Error).message}`, { cause: error });
    }
    const names = new Set<string>();
    for (const key of keys) {
      const folder = key.slice(root.length).split('/', 1)[0]!;
      try {
        names.add(folder === '_' ? '' : decodeURIComponent(folder));
      } catch {
        // A key not written by shuttle: not a service.
      }
    }
    return [...names].sort();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#loadTimer);
    this.#subscribers.clear();
    await this.#session?.close().catch(() => {});
    await Promise.all([...this.#services.values(), ...(this.#loads ? [this.#loads] : [])].map(({ mirror }) => mirror.close()));
    this.#client.close();
    this.#channels.close();
  }

  async #writeLoad(): Promise<void> {
    const pending = this.#pendingLoad;
    if (pending === undefined) return;
    this.#pendingLoad = undefined;
    this.#lastLoadWrite = Date.now();
    await this.#providerSession()
      .putIfAlive(loadKey(this.settings.prefix, pending.address), JSON.stringify(pending.load))
      .catch(() => {});
  }

  #providerSession(): ProviderSession {
    if (this.#closed) throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is closed`);
    this.#session ??= new ProviderSession(this.#client, this.settings.ttlSeconds, this.settings.requestTimeoutMs, this.settings.display);
    return this.#session;
  }

  #serviceMirror(service: string): { mirror: PrefixMirror; ready: Promise<void> } {
    let entry = this.#services.get(service);
    if (entry === undefined) {
      const mirror = new PrefixMirror(this.#client, servicePrefix(this.settings.prefix, service), this.settings.requestTimeoutMs, () => this.#notify(service));
      entry = { mirror, ready: mirror.start() };
      this.#services.set(service, entry);
    }
    return entry;
  }

  #loadMirror(): { mirror: PrefixMirror; ready: Promise<void> } {
    if (this.#loads === undefined) {
      const mirror = new PrefixMirror(this.#client, loadPrefix(this.settings.prefix), this.settings.requestTimeoutMs, () => this.#onLoads());
      this.#loads = { mirror, ready: mirror.start() };
      this.#loads.ready.catch(() => {
        this.#loads = undefined;
      });
    }
    return this.#loads;
  }

  #onLoads(): void {
    const entries = this.#loads?.mirror.entries;
    if (entries === undefined) return;
    const now = Date.now();
    const seen = new Set<string>();
    for (const [key, raw] of entries) {
      const address = addressOfLoadKey(this.settings.prefix, key);
      seen.add(address);
      if (this.#loadByAddress.get(address)?.raw === raw) continue;
      const load = parseLoad(safeParse(raw));
      this.#loadByAddress.set(address, { raw, load: load === undefined ? undefined : { ...load, receivedAt: now } });
    }
    for (const address of this.#loadByAddress.keys()) if (!seen.has(address)) this.#loadByAddress.delete(address);
    for (const service of this.#services.keys()) this.#notify(service);
  }

  #notify(service: string): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.query.service === service) subscriber.listener(this.#matching(subscriber.query));
    }
  }

  #matching(query: ServiceQuery): ServiceInstance[] {
    const entries = this.#services.get(query.service)?.mirror.entries;
    if (entries === undefined) return [];
    const result: ServiceInstance[] = [];
    for (const [key, raw] of entries) {
      let parsed = this.#parsed.get(key);
      if (parsed?.raw !== raw) {
        parsed = { raw, instance: parseInstance(safeParse(raw)) };
        this.#parsed.set(key, parsed);
      }
      const instance = parsed.instance;
      if (instance === undefined || !matchesQuery(query, instance)) continue;
      const load = this.#loadByAddress.get(instanceAddress(instance))?.load;
      result.push(load === undefined ? instance : { ...instance, load });
    }
    return result;
  }
}

/** A cockatiel-compatible backoff: `duration` ms now, doubling up to 1 s on each `next()`. */
function backoff(duration: number): { duration: number; next(): unknown } {
  return { duration, next: () => backoff(Math.min(1000, duration * 2)) };
}

function stripLoad(instance: ServiceInstance): Omit<ServiceInstance, 'load'> {
  const { load: _load, ...record } = instance;
  return record;
}

function safeParse(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}
