import { Etcd3 } from 'etcd3';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { ExtensionFactory } from '../../common/extension-registry.js';
import { instanceAddress, matchesQuery, type LoadSnapshot, type ServiceInstance, type ServiceQuery } from '../instance.js';
import { RegistryInputGuard } from '../input-guard.js';
import { checkInstance, RECORD_LIMITS } from '../record-check.js';
import type { InstancesListener, Registry, Subscription } from '../registry.js';
import { EtcdChannelPool } from './channel-pool.js';
import { loadKey, loadPrefix, serviceKey, servicePrefix } from './keys.js';
import { parseEtcdOptions, type EtcdSettings } from './options.js';
import { LoadView } from './load-view.js';
import { listPrefix, PrefixMirror, type MirrorLimits, type PrefixListing } from './prefix-mirror.js';
import { ProviderSession } from './provider-session.js';
import { serviceFolders } from './service-names.js';
import { guardWatchStream } from './watch-guard.js';
import { watchLiveness } from './watch-liveness.js';
import { etcdReason } from './etcd-reason.js';
import { attemptTimeoutMs, hostFailover } from './host-failover.js';
import { monotonicNow } from '../../common/clock.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'etcd';

/** `etcd://host:port[,host:port][/prefix]`, or `{ type: 'etcd', options: { url, … } }` (see options.ts). */
export const createEtcdRegistry: ExtensionFactory<Registry> = (options) => new EtcdRegistry(parseEtcdOptions(options));

/** One watched service: the mirror of its prefix and its records parsed (by key, with the raw value). */
interface ServiceEntry {
  readonly mirror: PrefixMirror;
  readonly ready: Promise<void>;
  readonly parsed: Map<string, { raw: string; instance: ServiceInstance | undefined }>;
  /** A notification of record changes waiting for {@link RECORD_NOTIFY_GAP_MS} to pass. */
  notifyTimer: NodeJS.Timeout | undefined;
  /** When the subscribers of this service were last handed their list. */
  lastNotify: number;
  /** Subscriptions to the service, open or being opened: the mirror ends with the last. */
  users: number;
}

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
  readonly #services = new Map<string, ServiceEntry>();
  #loads: Pick<ServiceEntry, 'mirror' | 'ready'> | undefined;
  readonly #subscribers = new Set<Subscriber>();
  /** The latest valid load per provider address. */
  readonly #loadView: LoadView;
  /** Pending notification of load changes (coalesced, see {@link LOAD_NOTIFY_MS}). */
  #loadNotifyTimer: NodeJS.Timeout | undefined;
  /** Pending notification of a provider that turned draining (see {@link DRAINING_NOTIFY_GAP_MS}). */
  #drainingNotifyTimer: NodeJS.Timeout | undefined;
  #lastDrainingNotify = 0;
  /** Address -> how many records of the watched services name it: load for other addresses concerns nobody here. */
  readonly #listed = new Map<string, number>();
  #pendingLoad: { address: string; load: LoadSnapshot } | undefined;
  #loadTimer: NodeJS.Timeout | undefined;
  #lastLoadWrite = 0;
  #closed = false;
  /** Moves the watch stream off a member that stopped answering (watch-liveness.ts). */
  readonly #liveness: { close(): void };
  /** Everything read from etcd is checked here; what fails is dropped, counted and warned about. */
  readonly #guard: RegistryInputGuard;

  constructor(settings: EtcdSettings) {
    this.settings = settings;
    this.#guard = new RegistryInputGuard(settings.display);
    this.#loadView = new LoadView(loadPrefix(settings.prefix), this.#guard);
    const requestTimeoutMs = settings.requestTimeoutMs;
    // No circuit breakers inside the client: a breaker that stays open for 5 s after an outage
    // would delay re-registration; this registry has its own retry loops. A request is retried
    // only on another member, when the one it went to is down or hung (host-failover.ts).
    // `async`: the client calls execute() with functions that throw synchronously on purpose
    // (to report a failure) and expects a rejected promise, never a synchronous throw.
    const passThrough = { execute: async (fn: (context: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };
    const attemptMs = attemptTimeoutMs(requestTimeoutMs, settings.hosts.length);
    this.#client = new Etcd3({
      hosts: settings.hosts,
      dialTimeout: requestTimeoutMs,
      grpcOptions: this.#channels.channelOptions(),
      ...(settings.auth === undefined ? {} : { auth: settings.auth }),
      ...(settings.tls === undefined ? {} : { credentials: settings.tls }),
      // Watches reconnect after 100 ms, doubling to at most 1 s (the client's default grows to
      // 30 s, far too slow to notice a registry that came back).
      faultHandling: { host: () => passThrough as never, global: hostFailover(settings.hosts.length) as never, watchBackoff: backoff(100) as never },
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + attemptMs }),
    });
    guardWatchStream(this.#client, (error) => this.#guard.drop('the watch stream', `a message etcd3 could not route: ${(error as Error).message}`));
    // Probes every third of a request's budget; a stream silent for a whole budget is moved.
    this.#liveness = watchLiveness(this.#client, Math.max(100, Math.floor(requestTimeoutMs / 3)), requestTimeoutMs, watchWarning);
  }

  /** Leases granted by this provider so far (1 normally; more after re-registrations). */
  get leaseGenerations(): number {
    return this.#session?.generations ?? 0;
  }

  /** Keys of this provider written back after someone else deleted them (or moved them off its lease). */
  get restoredKeys(): number {
    return this.#session?.restored ?? 0;
  }

  /** Keys and values read from etcd and refused (malformed, out of range, too large). */
  get rejectedEntries(): number {
    return this.#guard.dropped;
  }

  async register(instance: ServiceInstance): Promise<void> {
    const checked = checkInstance(stripLoad(instance));
    if (typeof checked === 'string')
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `etcd registry ${this.settings.display}: cannot register ${instance.service}: ${checked}`);
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
    const wait = this.#lastLoadWrite + this.settings.loadIntervalMs - monotonicNow();
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
    const entry = this.#serviceMirror(query.service);
    entry.users++;
    try {
      await Promise.all([entry.ready, this.#loadMirror().ready]);
    } catch (error) {
      // The service's mirror may have started its watch (the load mirror failed): stop it,
      // unless others use it, or each failed subscribe leaves a watcher behind.
      if (--entry.users === 0) this.#drop(query.service, entry);
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is unreachable: ${etcdReason(error, this.settings.requestTimeoutMs)}`, {
        cause: error,
      });
    }
    const subscriber: Subscriber = { query, listener };
    this.#subscribers.add(subscriber);
    listener(this.#matching(query));
    let closed = false;
    return {
      close: () => {
        if (closed) return;
        closed = true;
        this.#subscribers.delete(subscriber);
        // The last subscription of a service ends its mirror: `shuttle ls` reading 10,000
        // services one after the other holds a few watches, not 10,000.
        if (--entry.users === 0) this.#drop(query.service, entry);
      },
    };
  }

  /** Forgets a service's mirror and what it listed, and stops its watch. */
  #drop(service: string, entry: ServiceEntry): void {
    if (this.#services.get(service) !== entry) return;
    this.#services.delete(service);
    for (const parsed of entry.parsed.values()) this.#unlist(parsed.instance);
    clearTimeout(entry.notifyTimer);
    void entry.mirror.close();
  }

  /**
   * One listing of `{prefix}/services/` (in pages, at most `limit` keys and the byte budget of
   * a subscription's copy) and the load channel's copy; no watch on any service.
   */
  async records(limit: number): Promise<{ records: ServiceInstance[]; truncated: boolean }> {
    const root = `${this.settings.prefix}/services/`;
    let listing: PrefixListing;
    try {
      await this.#loadMirror().ready;
      // Reported by the caller, who says how many it shows: not a warning about the registry.
      const limits = mirrorLimits(root, limit, RECORD_LIMITS.recordBytes);
      listing = await listPrefix(this.#client, root, this.settings.requestTimeoutMs, limits, (source, reason) => {
        if (source !== root) this.#guard.drop(source, reason);
      });
    } catch (error) {
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is unreachable: ${etcdReason(error, this.settings.requestTimeoutMs)}`, {
        cause: error,
      });
    }
    const records: ServiceInstance[] = [];
    for (const [key, raw] of listing.entries) {
      const instance = this.#guard.read(key, raw, RECORD_LIMITS.recordBytes, checkInstance);
      if (instance === undefined) continue;
      const load = this.#loadView.get(instanceAddress(instance));
      records.push(load === undefined ? instance : { ...instance, load });
    }
    return { records, truncated: listing.full };
  }

  async services(): Promise<string[]> {
    const root = `${this.settings.prefix}/services/`;
    let listed: Awaited<ReturnType<typeof serviceFolders>>;
    try {
      listed = await serviceFolders(this.#client, root, MAX_SERVICE_NAMES);
    } catch (error) {
      throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is unreachable: ${etcdReason(error, this.settings.requestTimeoutMs)}`, {
        cause: error,
      });
    }
    if (listed.truncated) this.#guard.drop(root, `holds more than ${MAX_SERVICE_NAMES} services; only the first ${MAX_SERVICE_NAMES} in key order are listed`);
    const names = new Set<string>();
    for (const folder of listed.folders) {
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
    clearTimeout(this.#loadNotifyTimer);
    clearTimeout(this.#drainingNotifyTimer);
    this.#subscribers.clear();
    for (const entry of this.#services.values()) clearTimeout(entry.notifyTimer);
    this.#liveness.close();
    await this.#session?.close().catch(() => {});
    await Promise.all([...this.#services.values(), ...(this.#loads ? [this.#loads] : [])].map(({ mirror }) => mirror.close()));
    this.#client.close();
    this.#channels.close();
  }

  async #writeLoad(): Promise<void> {
    const pending = this.#pendingLoad;
    if (pending === undefined) return;
    this.#pendingLoad = undefined;
    this.#lastLoadWrite = monotonicNow();
    await this.#providerSession()
      .putIfAlive(loadKey(this.settings.prefix, pending.address), JSON.stringify(pending.load))
      .catch(() => {});
  }

  #providerSession(): ProviderSession {
    if (this.#closed) throw new RpcError(RpcCode.UNAVAILABLE, `etcd registry ${this.settings.display} is closed`);
    this.#session ??= new ProviderSession(
      this.#client,
      this.settings.ttlSeconds,
      this.settings.requestTimeoutMs,
      this.settings.display,
      (key) => {
        this.#guard.drop(key, "this provider's key was deleted, or moved off its lease, by someone else; written back on the lease");
        // Counted and warned about again if it is removed again.
        this.#guard.forget(key);
      },
      leaseWarning,
    );
    return this.#session;
  }

  #serviceMirror(service: string): ServiceEntry {
    let entry = this.#services.get(service);
    if (entry === undefined) {
      const prefix = servicePrefix(this.settings.prefix, service);
      const mirror = new PrefixMirror(
        this.#client,
        prefix,
        this.settings.requestTimeoutMs,
        (changed) => this.#guard.contain(prefix, () => this.#onRecords(service, changed)),
        mirrorLimits(prefix, RECORD_MIRROR_KEYS, RECORD_LIMITS.recordBytes),
        (source, reason) => this.#guard.drop(source, reason),
      );
      entry = { mirror, ready: mirror.start(), parsed: new Map(), notifyTimer: undefined, lastNotify: 0, users: 0 };
      this.#services.set(service, entry);
    }
    return entry;
  }

  #loadMirror(): Pick<ServiceEntry, 'mirror' | 'ready'> {
    if (this.#loads === undefined) {
      const prefix = loadPrefix(this.settings.prefix);
      const mirror = new PrefixMirror(
        this.#client,
        prefix,
        this.settings.requestTimeoutMs,
        (changed) => this.#guard.contain(prefix, () => this.#onLoads(changed)),
        mirrorLimits(prefix, LOAD_MIRROR_KEYS, RECORD_LIMITS.loadBytes),
        (source, reason) => this.#guard.drop(source, reason),
      );
      this.#loads = { mirror, ready: mirror.start() };
      this.#loads.ready.catch(() => {
        this.#loads = undefined;
        void mirror.close();
      });
    }
    return this.#loads;
  }

  /**
   * Every notification hands each subscriber the whole list (N records), so what one load
   * event may cost is bounded here: a snapshot for an address no watched record names costs
   * nothing more than its own parse (anyone can write such keys, by the thousand); other
   * changes reach subscribers at most every {@link LOAD_NOTIFY_MS}; a listed provider that
   * turns draining is passed on at once, but at most once per {@link DRAINING_NOTIFY_GAP_MS}
   * (a snapshot flipping between draining and not cannot make every event a full rebuild).
   */
  #onLoads(changed: readonly string[] | undefined): void {
    const entries = this.#loads?.mirror.entries;
    if (entries === undefined) return;
    const { addresses, newlyDraining } = this.#loadView.apply(entries, changed);
    if (changed === undefined) {
      this.#notifyAll();
      return;
    }
    if (!this.#anyListed(addresses)) return;
    if (this.#anyListed(newlyDraining)) this.#notifyDraining();
    else this.#loadNotifyTimer ??= setTimeout(() => this.#notifyAll(), LOAD_NOTIFY_MS).unref();
  }

  #anyListed(addresses: ReadonlySet<string>): boolean {
    for (const address of addresses) if (this.#listed.has(address)) return true;
    return false;
  }

  #notifyDraining(): void {
    if (this.#drainingNotifyTimer !== undefined) return;
    const wait = Math.max(0, this.#lastDrainingNotify + DRAINING_NOTIFY_GAP_MS - monotonicNow());
    if (wait === 0) {
      this.#lastDrainingNotify = monotonicNow();
      this.#notifyAll();
      return;
    }
    this.#drainingNotifyTimer = setTimeout(() => {
      this.#drainingNotifyTimer = undefined;
      this.#lastDrainingNotify = monotonicNow();
      this.#notifyAll();
    }, wait).unref();
  }

  #notifyAll(): void {
    clearTimeout(this.#loadNotifyTimer);
    this.#loadNotifyTimer = undefined;
    for (const service of this.#services.keys()) this.#notify(service);
  }

  /**
   * A service's records changed: parse the `changed` keys (all when undefined: the copy was
   * replaced), forget those that are gone, keep the listed addresses current, tell the subscribers.
   */
  #onRecords(service: string, changed: readonly string[] | undefined): void {
    const entry = this.#services.get(service);
    if (entry === undefined) return;
    const entries = entry.mirror.entries;
    const keys = changed ?? new Set([...entry.parsed.keys(), ...entries.keys()]);
    for (const key of keys) {
      const raw = entries.get(key);
      if (raw !== undefined) {
        this.#parse(entry, key, raw);
        continue;
      }
      const gone = entry.parsed.get(key);
      if (gone === undefined) continue;
      entry.parsed.delete(key);
      this.#unlist(gone.instance);
      this.#guard.forget(key);
    }
    this.#notifyRecords(entry, service);
  }

  /**
   * Passes record changes on: at once when the service's subscribers have not been told
   * anything for {@link RECORD_NOTIFY_GAP_MS}, else when that gap ends, with every change made
   * meanwhile. Each notification hands every subscriber the whole list (N records), so a
   * record rewritten without pause — a runaway deploy, anyone who can write under the prefix —
   * costs a bounded number of rebuilds a second, not one per write.
   */
  #notifyRecords(entry: ServiceEntry, service: string): void {
    if (entry.notifyTimer !== undefined) return;
    const wait = entry.lastNotify + RECORD_NOTIFY_GAP_MS - monotonicNow();
    if (wait <= 0) {
      this.#notify(service);
      return;
    }
    entry.notifyTimer = setTimeout(() => this.#notify(service), wait).unref();
  }

  /** The record at `key`, parsed once per value (undefined when refused); the listed addresses follow. */
  #parse(entry: ServiceEntry, key: string, raw: string): ServiceInstance | undefined {
    const known = entry.parsed.get(key);
    if (known?.raw === raw) return known.instance;
    this.#unlist(known?.instance);
    const instance = this.#guard.read(key, raw, RECORD_LIMITS.recordBytes, checkInstance);
    entry.parsed.set(key, { raw, instance });
    if (instance !== undefined) {
      const address = instanceAddress(instance);
      this.#listed.set(address, (this.#listed.get(address) ?? 0) + 1);
    }
    return instance;
  }

  #unlist(instance: ServiceInstance | undefined): void {
    if (instance === undefined) return;
    const address = instanceAddress(instance);
    const count = (this.#listed.get(address) ?? 0) - 1;
    if (count > 0) this.#listed.set(address, count);
    else this.#listed.delete(address);
  }

  #notify(service: string): void {
    const entry = this.#services.get(service);
    if (entry !== undefined) {
      clearTimeout(entry.notifyTimer);
      entry.notifyTimer = undefined;
      entry.lastNotify = monotonicNow();
    }
    for (const subscriber of this.#subscribers) {
      if (subscriber.query.service !== service) continue;
      const instances = this.#matching(subscriber.query);
      this.#guard.contain(`a subscriber of ${service}`, () => subscriber.listener(instances));
    }
  }

  #matching(query: ServiceQuery): ServiceInstance[] {
    const entry = this.#services.get(query.service);
    if (entry === undefined) return [];
    const result: ServiceInstance[] = [];
    for (const [key, raw] of entry.mirror.entries) {
      const instance = this.#parse(entry, key, raw);
      if (instance === undefined || !matchesQuery(query, instance)) continue;
      const load = this.#loadView.get(instanceAddress(instance));
      result.push(load === undefined ? instance : { ...instance, load });
    }
    return result;
  }
}

/**
 * Longest delay between a load report's arrival and the subscribers hearing of it (draining
 * excepted). Reports are written every 500 ms by default, so this adds little to their age;
 * the client counts its own in-flight calls at pick time, which matter more than 100 ms.
 */
const LOAD_NOTIFY_MS = 100;

/**
 * Shortest gap between two notifications of a service's record changes: a join or a leave
 * reaches subscribers within 50 ms, and record writes cause at most 20 full rebuilds a second
 * per service, however many there are.
 */
const RECORD_NOTIFY_GAP_MS = 50;

/**
 * Shortest gap between two immediate notifications of providers turning draining: a consumer
 * hears of a drain within 10 ms, and at most 100 full rebuilds a second come from drains.
 */
const DRAINING_NOTIFY_GAP_MS = 10;

/**
 * Records of one service a consumer holds at most (as the file registry reads per folder):
 * past it, a flood of keys under the service's prefix costs no more memory or listing time.
 */
const RECORD_MIRROR_KEYS = 10_000;
/** Load snapshots a consumer holds at most: one per provider process of the whole cluster. */
const LOAD_MIRROR_KEYS = 20_000;
/** Bytes of keys and values one mirror holds at most (a few hundred bytes per real record or snapshot). */
const MIRROR_BYTES = 64 * 1024 * 1024;
/** Bytes a key may have beyond its prefix: room for the longest names a record may carry, encoded. */
const KEY_SUFFIX_BYTES = 2048;

function mirrorLimits(prefix: string, maxKeys: number, maxValueBytes: number): MirrorLimits {
  return { maxKeys, maxBytes: MIRROR_BYTES, maxKeyBytes: Buffer.byteLength(prefix) + KEY_SUFFIX_BYTES, maxValueBytes };
}

/** Service names `services()` returns at most (`shuttle ls`, the admin endpoint). */
const MAX_SERVICE_NAMES = 10_000;

/** A cockatiel-compatible backoff: `duration` ms now, doubling up to 1 s on each `next()`. */
function backoff(duration: number): { duration: number; next(): unknown } {
  return { duration, next: () => backoff(Math.min(1000, duration * 2)) };
}

/** A lost lease and its replacement, once each: in the process's warnings, as the registry's refusals are. */
function leaseWarning(message: string): void {
  process.emitWarning(message, { code: 'SHUTTLE_REGISTRY_LEASE' });
}

/** A watch stream moved off a silent member: in the process's warnings, once per move. */
function watchWarning(message: string): void {
  process.emitWarning(message, { code: 'SHUTTLE_REGISTRY_WATCH' });
}

function stripLoad(instance: ServiceInstance): Omit<ServiceInstance, 'load'> {
  const { load: _load, ...record } = instance;
  return record;
}
