import type { Logger } from '../log/log.js';
import type { RefusalListener, RefusalReason, RefusedConnections } from '../transport/transport.js';
import { MAX_NOOP_FRAMES, NOOP_WINDOW_MS } from '../transport/tcp/noop-frames.js';
import { monotonicNow } from '../common/clock.js';

/** At most one log line this often, however many connections are refused in between. */
const LOG_INTERVAL_MS = 5000;

/**
 * Counts the connections a server's transports refuse, by transport and limit (read by the
 * `shuttle_connections_refused_total` metric), and logs them at `warn`, rate-limited: the first
 * refusal at once, then one line per interval with the count since the last line — a flood of
 * connections must not become a flood of log lines. Connections closed for a flood of frames
 * that do no work (`frameFlood`) are counted the same way, on a line of their own.
 */
export class ConnectionRefusals {
  readonly #log: Logger;
  readonly #counts = new Map<string, { transport: string; reason: RefusalReason; count: number }>();
  /** Refusals since the last line, by `transport reason`. */
  #unlogged = new Map<string, number>();
  #lastAddress = '';
  #lastLine = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** The listener to give the transport named `transport`. */
  listener(transport: string): RefusalListener {
    return (reason, address) => this.#refused(transport, reason, address);
  }

  /** Every transport and limit that refused a connection so far, with its count. */
  counts(): readonly RefusedConnections[] {
    return [...this.#counts.values()].map((entry) => ({ ...entry }));
  }

  /** Writes out what is still unlogged and stops the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flush();
  }

  #refused(transport: string, reason: RefusalReason, address: string): void {
    const key = `${transport} ${reason}`;
    const entry = this.#counts.get(key) ?? { transport, reason, count: 0 };
    entry.count++;
    this.#counts.set(key, entry);
    this.#unlogged.set(key, (this.#unlogged.get(key) ?? 0) + 1);
    this.#lastAddress = address;
    const wait = this.#lastLine + LOG_INTERVAL_MS - monotonicNow();
    if (wait <= 0) this.#flush();
    else
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        this.#flush();
      }, wait).unref();
  }

  #flush(): void {
    if (this.#unlogged.size === 0) return;
    const limits: [string, number][] = [];
    const floods: [string, number][] = [];
    for (const entry of this.#unlogged) (entry[0].endsWith(' frameFlood') ? floods : limits).push(entry);
    this.#unlogged = new Map();
    this.#lastLine = monotonicNow();
    const total = (entries: [string, number][]): number => entries.reduce((sum, [, count]) => sum + count, 0);
    if (limits.length > 0) {
      this.#log.warn(
        { refused: Object.fromEntries(limits), lastAddress: this.#lastAddress },
        `${total(limits)} connection(s) refused by the connection limits (by transport and limit); raise limits.maxConnections / maxConnectionsPerAddress if these are wanted clients`,
      );
    }
    if (floods.length > 0) {
      this.#log.warn(
        { refused: Object.fromEntries(floods), lastAddress: this.#lastAddress },
        `${total(floods)} connection(s) closed for sending more frames that do no work (heartbeats, cancels, window updates for no running call, GOAWAYs) than a consumer ever sends: ${MAX_NOOP_FRAMES} within ${NOOP_WINDOW_MS} ms`,
      );
    }
  }
}
