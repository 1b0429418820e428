import { monotonicNow } from '../../common/clock.js';

/**
 * Cancellations a consumer may send on one HTTP/2 connection before it should move new calls
 * to a fresh one.
 *
 * Why: every call the consumer gives up on (an abort, a reader that stops early, a deadline)
 * reaches the provider as an RST_STREAM, and Node's HTTP/2 server (nghttp2's defense against
 * "rapid reset", CVE-2023-44487) allows a burst of 1,000 of them per connection, refilled at 33
 * a second; past that it ends the whole connection with INTERNAL_ERROR, failing every call on
 * it. Node 20 offers no way to raise those numbers. A consumer that cancels more than 33 calls
 * a second for long enough — an inference gateway whose users close their tabs mid-answer —
 * lost all of its calls in flight every few seconds (measured: 200 cancels a second cost 50
 * unrelated calls every 6 s). The budget mirrors the provider's bucket with a margin, so the
 * connection can be retired while it is still in good standing.
 */
export class ResetBudget {
  /** nghttp2's defaults (burst and refill per second), which Node 20 applies to every server. */
  static readonly BURST = 1000;
  static readonly RATE_PER_SECOND = 33;
  /** Tokens kept back: cancels of the calls still on the old connection spend them after it is retired. */
  static readonly RESERVE = 400;

  #tokens = ResetBudget.BURST;
  #at: number;
  readonly #now: () => number;

  /** @param now the clock the bucket refills by: monotonic, as the provider's own refills in real time */
  constructor(now: () => number = monotonicNow) {
    this.#now = now;
    this.#at = now();
  }

  /** Counts one cancellation; true once the connection should take no new calls. */
  spend(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(ResetBudget.BURST, this.#tokens + ((now - this.#at) / 1000) * ResetBudget.RATE_PER_SECOND) - 1;
    this.#at = now;
    return this.#tokens < ResetBudget.RESERVE;
  }
}
