import { RpcCode, RpcError } from '../errors/errors.js';
import { MAX_TIMER_MS } from '../common/validate.js';
import { monotonicNow } from '../common/clock.js';
import { ConnectGate } from '../transport/connect-gate.js';
import { DEFAULT_HOST_LOOKUP, HostLookup } from '../transport/host-lookup.js';
import type { ClientConnection, ConnectOptions, ConnectionState, Transport } from '../transport/transport.js';

/** How many connections a consumer may hold open, and how long an unused one stays open. */
export interface PoolLimits {
  /**
   * Connections holding a socket (connecting or ready), those of providers that left and still
   * finish their calls included. Past it the least recently used connection with no call in
   * flight is closed to make room; when every one has calls, the call that needed a new one
   * fails RESOURCE_EXHAUSTED, never sent (so that failover may take a provider already
   * connected).
   */
  readonly maxConnections: number;
  /** A connection with no call in flight and none sent for this long is closed (between one and two times it). */
  readonly idleTimeoutMs: number;
  /** Connects under way at once; more wait for a slot. */
  readonly maxConnecting: number;
}

/** The defaults of {@link PoolLimits}: `maxConnections` is fitted to the fd limit by the client. */
export const DEFAULT_POOL_LIMITS: PoolLimits = { maxConnections: 4096, idleTimeoutMs: 300_000, maxConnecting: 64 };

/**
 * A connect under way for longer than this makes its provider count as down while any other is
 * not (see {@link ConnectionPool.isDown}). A connect on a LAN, TLS included, takes a few
 * milliseconds; one that takes longer is to a provider that is far, stopped or too busy to
 * answer, and calls sent to it would wait up to `connectTimeoutMs` (3 s) behind it.
 */
export const SLOW_CONNECT_MS = 100;

/** A connection and when it was last handed out, on the pool's use counter. */
interface Entry {
  readonly connection: ClientConnection;
  used: number;
  /** When this pool first saw the connection connecting, while it still is. */
  connectingSince?: number | undefined;
}

/** States in which a connection holds a socket (a descriptor). */
const holdsSocket = (state: ConnectionState): boolean => state === 'ready' || state === 'connecting';

/**
 * One multiplexed connection per provider address, shared by every service the consumer
 * calls there, at most {@link PoolLimits.maxConnections} of them open at once. Connections to
 * addresses no longer in any directory are closed gracefully, idle ones after
 * {@link PoolLimits.idleTimeoutMs}.
 */
export class ConnectionPool {
  readonly #transport: Transport;
  readonly #options: ConnectOptions;
  readonly #limits: PoolLimits;
  readonly #gate: ConnectGate;
  readonly #connections = new Map<string, Entry>();
  /** Connections to providers that left, still finishing their calls. */
  readonly #retiring = new Set<ClientConnection>();
  /**
   * Counts hand-outs: an entry's `used` is the count at its last one. A counter, not a clock:
   * the call path reads no time for it, and the least recently used entry has the smallest.
   */
  #uses = 0;
  /** {@link #uses} at the idle sweep before the last: entries not used since are idle. */
  #sweptAt = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(transport: Transport, options: ConnectOptions, limits: PoolLimits = DEFAULT_POOL_LIMITS) {
    this.#transport = transport;
    this.#gate = new ConnectGate(limits.maxConnecting);
    const lookup = new HostLookup({ ...DEFAULT_HOST_LOOKUP, timeoutMs: options.connectTimeoutMs });
    this.#options = { ...options, connectGate: this.#gate, lookup: lookup.lookup };
    this.#limits = limits;
  }

  /**
   * Whether every connect slot is taken: a call sent to a provider not connected yet would wait
   * behind connects that may never finish (a registry listing addresses that do not answer), so
   * selection keeps to providers already connected while there are any.
   */
  get connectsFull(): boolean {
    return this.#gate.full;
  }

  /** The name of the transport, which is the protocol this consumer speaks. */
  get protocol(): string {
    return this.#transport.name;
  }

  /** Connections that hold a socket now (connecting or ready), those still finishing calls of providers that left included. */
  get open(): number {
    let open = 0;
    for (const entry of this.#connections.values()) if (holdsSocket(entry.connection.state)) open++;
    // Closing, but still holding their sockets until their last call ends.
    return open + this.#retiring.size;
  }

  /**
   * The connection to `host:port` (`address`, when the caller has it already), created (not yet
   * connected) on first use. When it has no socket and would open one, the pool makes room
   * under `maxConnections` first: it closes the least recently used connection with no call in
   * flight, or throws RESOURCE_EXHAUSTED (never sent) when every open one has calls.
   */
  get(host: string, port: number, address = `${host}:${port}`): ClientConnection {
    let entry = this.#connections.get(address);
    if (entry === undefined) {
      entry = { connection: this.#transport.connect(host, port, this.#options), used: 0 };
      this.#connections.set(address, entry);
      this.#sweeper ??= this.#startSweeper();
    }
    entry.used = ++this.#uses;
    // The usual call finds its connection ready: one getter, no count.
    if (entry.connection.state !== 'ready' && this.#connections.size + this.#retiring.size > this.#limits.maxConnections) this.#makeRoom(entry);
    return entry.connection;
  }

  /** Closes the least recently used idle connection if `entry` opening a socket would pass the cap. */
  #makeRoom(entry: Entry): void {
    const state = entry.connection.state;
    if (holdsSocket(state) || state === 'transient-failure' || state === 'shutdown') return;
    // Only past the cap in entries is the number of sockets counted (a walk over the entries).
    const open = this.open;
    if (open < this.#limits.maxConnections) return;
    let oldest: [string, Entry] | undefined;
    for (const candidate of this.#connections) {
      const { connection, used } = candidate[1];
      if (connection.state === 'ready' && connection.inFlight === 0 && (oldest === undefined || used < oldest[1].used)) oldest = candidate;
    }
    if (oldest === undefined) {
      throw new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `this consumer holds ${open} connections (maxConnections ${this.#limits.maxConnections}), each with calls in flight; not opening one to ${entry.connection.address}. Raise maxConnections (and the open-file limit) to call more providers at once`,
        { details: { neverSent: true, local: true } },
      );
    }
    this.#connections.delete(oldest[0]);
    void oldest[1].connection.close({ graceful: true, timeoutMs: MAX_TIMER_MS });
  }

  /** One timer for the pool: every half idle timeout, closes the connections not used since the sweep before. */
  #startSweeper(): NodeJS.Timeout {
    const every = Math.max(1, Math.floor(this.#limits.idleTimeoutMs / 2));
    const timer = setInterval(() => this.#sweep(), every);
    timer.unref();
    return timer;
  }

  #sweep(): void {
    const since = this.#sweptAt;
    this.#sweptAt = this.#uses;
    for (const [address, { connection, used }] of this.#connections) {
      // Unused for at least one whole period, and nothing running on it. A failed connection
      // goes too: it holds no socket, but what it remembers (the backoff) is not worth keeping
      // for an address nobody calls.
      if (used <= since && connection.inFlight === 0 && connection.state !== 'connecting') {
        this.#connections.delete(address);
        void connection.close({ graceful: true, timeoutMs: MAX_TIMER_MS });
      }
    }
    if (this.#connections.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /**
   * Whether `address` is known to be unusable right now: its connection failed and waits to
   * reconnect, the provider said GOAWAY, or its connect has been under way for longer than
   * {@link SLOW_CONNECT_MS}. Selection skips such providers, while any other is not down,
   * instead of spending an attempt (and a retry token) to find out again.
   */
  isDown(address: string): boolean {
    const entry = this.#connections.get(address);
    if (entry === undefined) return false;
    const connection = entry.connection;
    const state = connection.state;
    if (state === 'connecting') return this.#slowToConnect(entry);
    if (entry.connectingSince !== undefined) entry.connectingSince = undefined;
    return state === 'transient-failure' || connection.goingAway;
  }

  /**
   * Whether the connect under way has taken longer than {@link SLOW_CONNECT_MS} since this pool
   * first saw it. Like gRPC's balancers, which pick only among ready connections, selection then
   * passes this provider over for one that answers, instead of queueing more calls behind a
   * connect that a stopped or hung process accepted and will never complete. The time is read
   * only while a connect is under way.
   */
  #slowToConnect(entry: Entry): boolean {
    const now = monotonicNow();
    entry.connectingSince ??= now;
    return now - entry.connectingSince > SLOW_CONNECT_MS;
  }

  /** The state of the connection to `address`; `none` before the first call there. */
  state(address: string): ConnectionState | 'none' {
    return this.#connections.get(address)?.connection.state ?? 'none';
  }

  /** Calls in flight to `address` from this consumer. */
  inFlight(address: string): number {
    return this.#connections.get(address)?.connection.inFlight ?? 0;
  }

  /** Closes, after their calls finish, the connections whose address is not in `live`. */
  retainOnly(live: ReadonlySet<string>): void {
    for (const [address, { connection }] of this.#connections) {
      if (!live.has(address)) {
        this.#connections.delete(address);
        // A provider leaves the registry when it starts to drain: the calls it is running
        // still get their answers, however long they take. Each is bounded by its own
        // deadline, the provider closes when its drain ends, and heartbeats find a dead one.
        this.#retiring.add(connection);
        void connection.close({ graceful: true, timeoutMs: MAX_TIMER_MS }).finally(() => this.#retiring.delete(connection));
      }
    }
  }

  /**
   * Closes every connection, those still finishing the calls of providers that left included;
   * with `graceful`, waits for calls in flight up to `timeoutMs`.
   */
  async close(options: { graceful: boolean; timeoutMs: number }): Promise<void> {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const all = [...[...this.#connections.values()].map((entry) => entry.connection), ...this.#retiring];
    this.#connections.clear();
    await Promise.all(all.map((connection) => connection.close(options)));
  }
}
