import { monotonicNow } from '../common/clock.js';

/**
 * The engine stalls when requests are in flight to it and none of them has heard anything from
 * it for `stallMs`: no response headers, no stream event, no answer. An engine whose step loop
 * is stuck (a GPU hung in a collective, a deadlocked scheduler) often still answers `/health`
 * and `/metrics` from its HTTP front end, so neither check sees it; the requests it holds do.
 * An engine that is merely busy keeps producing tokens for the sequences in its batch — one
 * long prefill delays only its own first token while the others go on — so silence on every
 * request at once is the sign.
 *
 * Times are read from the monotonic clock ({@link monotonicNow}): a wall clock stepped by NTP
 * must not make a healthy engine look stalled.
 */
export class EngineStall {
  readonly #stallMs: number;
  readonly #onChange: (stalled: boolean, reason: string) => void;
  readonly #now: () => number;
  #inFlight = 0;
  /** When anything was last heard from the engine, or a request went to an idle engine. */
  #heardAt: number;
  #stalled = false;

  /**
   * @param stallMs silence, with requests in flight, after which the engine counts as stalled.
   * @param onChange hears each change of verdict once (for the log).
   * @param now a monotonic clock in ms; {@link monotonicNow} by default.
   */
  constructor(stallMs: number, onChange: (stalled: boolean, reason: string) => void, now: () => number = monotonicNow) {
    this.#stallMs = stallMs;
    this.#onChange = onChange;
    this.#now = now;
    this.#heardAt = now();
  }

  /** A request goes to the engine. */
  begin(): void {
    // An engine that had nothing to do owes nothing yet: the silence counts from now.
    if (this.#inFlight++ === 0) this.#heardAt = this.#now();
  }

  /** Something came from the engine for a request in flight (headers, an event, an answer). */
  heard(): void {
    this.#heardAt = this.#now();
    if (this.#stalled) this.#change(false, 'the engine answered again');
  }

  /** A request to the engine ended, however it ended. */
  end(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (this.#inFlight === 0 && this.#stalled) this.#change(false, 'no request waits on the engine any more');
  }

  /** Whether the engine counts as stalled now; a change is reported through `onChange`. */
  get stalled(): boolean {
    if (!this.#stalled && this.#inFlight > 0) {
      const silentMs = this.#now() - this.#heardAt;
      if (silentMs >= this.#stallMs) {
        this.#change(true, `${this.#inFlight} request(s) in flight and nothing heard from the engine for ${Math.round(silentMs)} ms`);
      }
    }
    return this.#stalled;
  }

  #change(stalled: boolean, reason: string): void {
    this.#stalled = stalled;
    this.#onChange(stalled, reason);
  }
}
