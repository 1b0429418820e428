import type { LoadSnapshot } from '../registry/registry.js';
import { LOAD_REPORT_EVERY_MS, MAX_LOAD_REPORT_BYTES } from '../transport/transport.js';
import { monotonicNow } from '../common/clock.js';

/**
 * The load report a provider attaches to its answers (ORCA-style, as gRPC's per-call load
 * reports do): the registry's load snapshot without the prefix-cache summary (which stays on
 * the registry channel: it can be large), as UTF-8 JSON — the same fields and the same checks
 * on the consumer as a registry load record.
 *
 * Connections ask for it before nearly every answer, so the bytes are made at most once per
 * LOAD_REPORT_EVERY_MS, whatever the number of connections and answers; the snapshot function
 * (which calls the application's `load()` callback) runs no more often than that.
 */
export class AnswerLoad {
  #snapshot: (() => LoadSnapshot) | undefined;
  /** The report as is, and with one call less running (made together). */
  #bytes: [Uint8Array | undefined, Uint8Array | undefined] | undefined;
  #madeAt = 0;

  /** Where snapshots come from; no report is attached until it is set. */
  set source(snapshot: () => LoadSnapshot) {
    this.#snapshot = snapshot;
    this.#bytes = undefined;
  }

  /** Drops the cached report, so the next answer carries a new one (draining starts now). */
  invalidate(): void {
    this.#bytes = undefined;
  }

  /**
   * The report's bytes, or undefined when there is no source or the snapshot cannot be sent.
   * `answering` 1 is for a report sent with an answer whose call still counts as running (a
   * grpc trailer): the report leaves that call out, so the consumer's next pick does not see
   * the provider busier than it will be.
   */
  report(answering: 0 | 1 = 0): Uint8Array | undefined {
    const snapshot = this.#snapshot;
    if (snapshot === undefined) return undefined;
    const now = monotonicNow();
    if (this.#bytes === undefined || now - this.#madeAt >= LOAD_REPORT_EVERY_MS) {
      const { cachedPrefixes: _summary, receivedAt: _received, ...load } = snapshot();
      this.#bytes = [encode(load), encode({ ...load, running: Math.max(0, load.running - 1) })];
      this.#madeAt = now;
    }
    return this.#bytes[answering];
  }
}

/**
 * An application's load() can add nothing that makes a report this large, but a report must
 * never become a large frame on every connection.
 */
function encode(load: Omit<LoadSnapshot, 'cachedPrefixes' | 'receivedAt'>): Uint8Array | undefined {
  const bytes = Buffer.from(JSON.stringify(load));
  return bytes.length <= MAX_LOAD_REPORT_BYTES ? bytes : undefined;
}
