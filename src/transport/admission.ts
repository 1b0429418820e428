import { RpcCode, RpcError } from '../errors/errors.js';
import { DEFAULT_MAX_UNSENT_BYTES } from './defaults.js';

/** Provider-side limits on connections, which every transport server honours. */
export interface ConnectionLimits {
  /** Connections open at once, from everyone (lowered at start to what the fd limit allows). */
  readonly maxConnections: number;
  /** Connections open at once from one remote address. */
  readonly maxConnectionsPerAddress: number;
  /**
   * A frame must arrive whole within this long of its first byte (a slowloris guard). On grpc:
   * a connection must send the whole HTTP/2 client preface (magic and SETTINGS) this soon.
   */
  readonly frameTimeoutMs: number;
  /**
   * Calls running at once on one connection; more are refused RESOURCE_EXHAUSTED, never run
   * (on grpc: the HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS the provider announces).
   */
  readonly maxCallsPerConnection: number;
  /**
   * tcp: a connection from which nothing arrives this long is closed — 3 missed heartbeats at
   * the consumers' default 10 s interval, plus their 5 s heartbeat timeout. grpc: a connection
   * with no call running this long is closed with a GOAWAY (the consumer reconnects on demand).
   */
  readonly idleTimeoutMs: number;
  /**
   * Bytes of answers a connection may have queued unsent (the peer is not reading them).
   * tcp: above it the connection's requests are no longer read and streams wait for the socket;
   * at four times it, finished answers are replaced by RESOURCE_EXHAUSTED errors; a peer that
   * still reads nothing is closed by the idle timeout. grpc: a unary answer that would pass it
   * is replaced by RESOURCE_EXHAUSTED naming it, and until the connection's bytes move, calls on
   * it are refused before they run; a stream waits before pulling its next chunk.
   */
  readonly maxUnsentBytes: number;
  /**
   * The largest flow-control window a stream gets when its consumer asks for more (tcp): a
   * larger ask is capped here, but never below half the ask, since a consumer may grant credit
   * back only in half-window steps and a smaller credit would stall the stream for good.
   */
  readonly maxStreamWindowBytes: number;
  /**
   * Estimated decoded bytes of the requests of one connection's running calls. A request that
   * would pass it waits, and the connection is not read, until running calls end (tcp). grpc:
   * the request messages and headers its calls hold; a call's message is not read while its
   * connection holds this much (grpc/request-budget.ts).
   */
  readonly maxDecodedBytesPerConnection: number;
  /** Bytes of partially received frames all connections of one server may hold together (tcp). */
  readonly maxTotalBufferedBytes: number;
  /**
   * Unsent answer bytes of all connections of one server together. Above it, every connection
   * holding more than 64 KiB unsent stops being read until it drains, so a thousand peers that
   * read nothing cannot each take `maxUnsentBytes` (tcp).
   */
  readonly maxTotalUnsentBytes: number;
  /**
   * Estimated decoded request bytes of the running calls of all connections of one server. Above
   * it, a request waits undecoded (its connection not read) unless it is small (64 KiB at most)
   * and the only one of its connection, so every connection can always make progress (tcp;
   * grpc the same, with the messages and headers of the calls, see grpc/request-budget.ts).
   */
  readonly maxTotalDecodedBytes: number;
  /**
   * grpc: a connection older than this is sent a GOAWAY, so consumers reconnect and spread
   * over providers that joined later; its running calls go on (see maxConnectionAgeGraceMs).
   * 0, the default: no age limit.
   */
  readonly maxConnectionAgeMs: number;
  /**
   * grpc: how long calls may still run on a connection past its maximum age before it is
   * closed under them. 0, the default: until they end, so a long generation is never cut short.
   */
  readonly maxConnectionAgeGraceMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  frameTimeoutMs: 10_000,
  maxCallsPerConnection: 10_000,
  idleTimeoutMs: 35_000,
  maxUnsentBytes: DEFAULT_MAX_UNSENT_BYTES,
  maxStreamWindowBytes: 1024 * 1024,
  maxDecodedBytesPerConnection: 16 * 1024 * 1024,
  maxTotalBufferedBytes: 24 * 1024 * 1024,
  maxTotalUnsentBytes: 16 * 1024 * 1024,
  maxTotalDecodedBytes: 24 * 1024 * 1024,
  maxConnectionAgeMs: 0,
  maxConnectionAgeGraceMs: 0,
};

/**
 * Which limit turned a connection away: a connection limit, or (tcp) the budget of frames that
 * do no work, past which an open connection is closed.
 */
export type RefusalReason = 'maxConnections' | 'maxConnectionsPerAddress' | 'frameFlood';

/** Told of every refused connection (a server counts and logs them; see src/server/refusals.ts). */
export type RefusalListener = (reason: RefusalReason, address: string) => void;

/** How many connections one transport refused because of one limit. */
export interface RefusedConnections {
  readonly transport: string;
  readonly reason: RefusalReason;
  readonly count: number;
}

/**
 * Counts the connections of one transport server and says whether a new one may stay, so a
 * flood of connections from one address cannot take every slot of the server.
 */
export class ConnectionAdmission {
  readonly #limits: ConnectionLimits;
  readonly #onRefused: RefusalListener | undefined;
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(limits: ConnectionLimits, onRefused?: RefusalListener) {
    this.#limits = limits;
    this.#onRefused = onRefused;
  }

  /** Admits a connection from `address`, or returns the RpcError to refuse it with (and tells the listener). */
  admit(address: string): RpcError | undefined {
    const fromAddress = this.#byAddress.get(address) ?? 0;
    if (this.#total >= this.#limits.maxConnections) {
      this.#onRefused?.('maxConnections', address);
      return new RpcError(RpcCode.RESOURCE_EXHAUSTED, `provider has ${this.#total} connections, its limit (maxConnections)`, { details: { neverSent: true } });
    }
    if (fromAddress >= this.#limits.maxConnectionsPerAddress) {
      this.#onRefused?.('maxConnectionsPerAddress', address);
      return new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `provider has ${fromAddress} connections from ${address}, its limit per address (maxConnectionsPerAddress)`,
        {
          details: { neverSent: true },
        },
      );
    }
    this.#total++;
    this.#byAddress.set(address, fromAddress + 1);
    return undefined;
  }

  /** Forgets an admitted connection. */
  release(address: string): void {
    this.#total--;
    const left = (this.#byAddress.get(address) ?? 1) - 1;
    if (left <= 0) this.#byAddress.delete(address);
    else this.#byAddress.set(address, left);
  }
}
