import { MAX_TIMER_MS } from '../common/validate.js';
import type { ClientConnection, ConnectOptions, ConnectionState, Transport } from '../transport/transport.js';

/**
 * One multiplexed connection per provider address, shared by every service the consumer
 * calls there. Connections to addresses no longer in any directory are closed gracefully.
 */
export class ConnectionPool {
  readonly #transport: Transport;
  readonly #options: ConnectOptions;
  readonly #connections = new Map<string, ClientConnection>();
  /** Connections to providers that left, still finishing their calls. */
  readonly #retiring = new Set<ClientConnection>();

  constructor(transport: Transport, options: ConnectOptions) {
    this.#transport = transport;
    this.#options = options;
  }

  /** The name of the transport, which is the protocol this consumer speaks. */
  get protocol(): string {
    return this.#transport.name;
  }

  /** The connection to `host:port` (`address`, when the caller has it already), created (not yet connected) on first use. */
  get(host: string, port: number, address = `${host}:${port}`): ClientConnection {
    let connection = this.#connections.get(address);
    if (connection === undefined) {
      connection = this.#transport.connect(host, port, this.#options);
      this.#connections.set(address, connection);
    }
    return connection;
  }

  /**
   * Whether `address` is known to be unusable right now: its connection failed and waits to
   * reconnect, or the provider said GOAWAY. Selection skips such providers instead of spending
   * an attempt (and a retry token) to find out again.
   */
  isDown(address: string): boolean {
    const connection = this.#connections.get(address);
    return connection !== undefined && (connection.state === 'transient-failure' || connection.goingAway);
  }

  /** The state of the connection to `address`; `none` before the first call there. */
  state(address: string): ConnectionState | 'none' {
    return this.#connections.get(address)?.state ?? 'none';
  }

  /** Calls in flight to `address` from this consumer. */
  inFlight(address: string): number {
    return this.#connections.get(address)?.inFlight ?? 0;
  }

  /** Closes, after their calls finish, the connections whose address is not in `live`. */
  retainOnly(live: ReadonlySet<string>): void {
    for (const [address, connection] of this.#connections) {
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
    const all = [...this.#connections.values(), ...this.#retiring];
    this.#connections.clear();
    await Promise.all(all.map((connection) => connection.close(options)));
  }
}
