import { RpcCode, RpcError } from '../errors/errors.js';
import { DEFAULT_MAX_UNSENT_BYTES } from './byte-budget.js';

/** Provider-side limits on connections, which every transport server honours. */
export interface ConnectionLimits {
  /** Connections open at once, from everyone. */
  readonly maxConnections: number;
  /** Connections open at once from one remote address. */
  readonly maxConnectionsPerAddress: number;
  /** A frame must arrive whole within this long of its first byte (a slowloris guard; tcp). */
  readonly frameTimeoutMs: number;
  /** Calls running at once on one connection; more are refused RESOURCE_EXHAUSTED, never run (tcp). */
  readonly maxCallsPerConnection: number;
  /**
   * A connection from which nothing arrives this long is closed: 3 missed heartbeats at the
   * consumers' default 10 s interval, plus their 5 s heartbeat timeout (tcp).
   */
  readonly idleTimeoutMs: number;
  /**
   * Bytes of answers a connection may have queued unsent (the peer is not reading them). Above
   * it the connection's requests are no longer read and streams wait for the socket; at four
   * times it, finished answers are replaced by RESOURCE_EXHAUSTED errors; a peer that still
   * reads nothing is closed by the idle timeout (tcp).
   */
  readonly maxUnsentBytes: number;
  /** The largest flow-control window a consumer may ask for one stream; larger asks are capped (tcp). */
  readonly maxStreamWindowBytes: number;
  /**
   * Estimated decoded bytes of the requests of one connection's running calls. A request that
   * would pass it waits, and the connection is not read, until running calls end (tcp).
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
   * and the only one of its connection, so every connection can always make progress (tcp).
   */
  readonly maxTotalDecodedBytes: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 10_000,
  maxConnectionsPerAddress: 1_000,
  frameTimeoutMs: 10_000,
  maxCallsPerConnection: 10_000,
  idleTimeoutMs: 35_000,
  maxUnsentBytes: DEFAULT_MAX_UNSENT_BYTES,
  maxStreamWindowBytes: 1024 * 1024,
  maxDecodedBytesPerConnection: 32 * 1024 * 1024,
  maxTotalBufferedBytes: 64 * 1024 * 1024,
  maxTotalUnsentBytes: 16 * 1024 * 1024,
  maxTotalDecodedBytes: 256 * 1024 * 1024,
};

/**
 * Counts the connections of one transport server and says whether a new one may stay, so a
 * flood of connections from one address cannot take every slot of the server.
 */
export class ConnectionAdmission {
  readonly #limits: ConnectionLimits;
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  /** Admits a connection from `address`, or returns the RpcError to refuse it with. */
  admit(address: string): RpcError | undefined {
    const fromAddress = this.#byAddress.get(address) ?? 0;
    if (this.#total >= this.#limits.maxConnections) {
      return new RpcError(RpcCode.RESOURCE_EXHAUSTED, `provider has ${this.#total} connections, its limit (maxConnections)`, { details: { neverSent: true } });
    }
    if (fromAddress >= this.#limits.maxConnectionsPerAddress) {
      return new RpcError(RpcCode.RESOURCE_EXHAUSTED, `provider has ${fromAddress} connections from ${address}, its limit per address (maxConnectionsPerAddress)`, {
        details: { neverSent: true },
      });
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
