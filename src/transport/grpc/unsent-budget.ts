/**
 * Answer bytes queued per connection and not yet sent: the grpc transport's bound on what a
 * peer that stops reading can make the provider hold. HTTP/2 flow control stops the bytes at
 * the peer's window, but grpc-js keeps every answer it was given in the stream's queue; without
 * this, 300 unread 1 MB answers on one connection held 274 MB. Connections are told apart by
 * grpc-js's peer name (remote address and port).
 */
export class UnsentBudget {
  readonly #limit: number;
  readonly #held = new Map<string, number>();
  /** Connections refused an answer since they last had bytes sent: they get no new work until then. */
  readonly #refused = new Set<string>();
  readonly #waiting = new Map<string, Set<() => void>>();

  /** `limit`: the bytes one connection may hold (`maxUnsentBytes`). */
  constructor(limit: number) {
    this.#limit = limit;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Bytes `peer`'s connection holds now. */
  held(peer: string): number {
    return this.#held.get(peer) ?? 0;
  }

  /**
   * Whether `peer`'s connection may be given new work: false while it holds its whole budget, and
   * after an answer did not fit, until some of what it holds is sent. Calls are refused on it
   * before they run, so a burst of requests behind an unread answer costs no handler work.
   */
  open(peer: string): boolean {
    // Asked before every chunk a stream writes: the set of refused connections is almost always
    // empty, and then one lookup is enough.
    return this.held(peer) < this.#limit && (this.#refused.size === 0 || !this.#refused.has(peer));
  }

  /**
   * Whether `bytes` more fit; when not, the connection is closed to new work (see {@link open}).
   * A connection holding nothing always has room, so an answer larger than the whole budget (but
   * within maxFrameBytes) still goes out, alone.
   */
  fits(peer: string, bytes: number): boolean {
    const held = this.held(peer);
    if (held === 0 || held + bytes <= this.#limit) return true;
    this.#refused.add(peer);
    return false;
  }

  /** A tally of one call's bytes on `peer`'s connection; close it when the call is over. */
  hold(peer: string): CallHold {
    return new CallHold(this, peer);
  }

  /** Resolves once `peer`'s connection holds less than the limit, or when `signal` aborts. */
  async room(peer: string, signal: AbortSignal): Promise<void> {
    while (!this.open(peer) && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const waiters = this.#waiting.get(peer) ?? new Set<() => void>();
        this.#waiting.set(peer, waiters);
        const wake = (): void => {
          waiters.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        waiters.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    if (this.#waiting.get(peer)?.size === 0) this.#waiting.delete(peer);
  }

  /** @private Counts bytes queued on `peer`'s connection (through a {@link CallHold}). */
  add(peer: string, bytes: number): void {
    this.#held.set(peer, this.held(peer) + bytes);
  }

  /** @private Forgets bytes sent or dropped, and wakes the streams waiting for room. */
  remove(peer: string, bytes: number): void {
    // Runs once per chunk written (grpc-js's write callback): no lookup or copy that is not needed.
    if (bytes > 0 && this.#refused.size > 0) this.#refused.delete(peer);
    const left = this.held(peer) - bytes;
    if (left <= 0) this.#held.delete(peer);
    else this.#held.set(peer, left);
    if (left >= this.#limit || this.#waiting.size === 0) return;
    const waiters = this.#waiting.get(peer);
    if (waiters !== undefined) for (const wake of [...waiters]) wake();
  }
}

/**
 * The bytes one call has queued. Each write gives its bytes back when grpc-js reports it
 * written; `close()` (when the call is over, however it ended) gives back the rest, because
 * grpc-js drops the callback of a write that fails when the stream is torn down.
 */
export class CallHold {
  readonly #budget: UnsentBudget;
  readonly #peer: string;
  #bytes = 0;
  #closed = false;

  constructor(budget: UnsentBudget, peer: string) {
    this.#budget = budget;
    this.#peer = peer;
  }

  /** Counts `bytes` about to be written; returns the callback to run once they are. */
  take(bytes: number): () => void {
    if (this.#closed) return () => {};
    this.#bytes += bytes;
    this.#budget.add(this.#peer, bytes);
    let given = false;
    return () => {
      if (given || this.#closed) return;
      given = true;
      this.#bytes -= bytes;
      this.#budget.remove(this.#peer, bytes);
    };
  }

  /** Gives back whatever is still counted; later takes count nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.remove(this.#peer, this.#bytes);
    this.#bytes = 0;
  }
}
