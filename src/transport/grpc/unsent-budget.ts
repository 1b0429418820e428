/**
 * Answer bytes queued per connection and not yet sent: the grpc transport's bound on what a
 * peer that stops reading can make the provider hold. HTTP/2 flow control stops the bytes at
 * the peer's window, but grpc-js keeps every answer it was given in the stream's queue; without
 * this, 300 unread 1 MB answers on one connection held 274 MB. Connections are told apart by
 * grpc-js's peer name (remote address and port).
 *
 * Each connection has its own budget (`limit`). Past it, the answers of calls that were already
 * running may still go out from one overdraft shared by the whole server (`overdraftLimit`):
 * grpc-js reads every request of a burst before any answer is queued, so 256 calls of 64 KiB
 * from one honest consumer all run at once, and refusing the answers past 4 MiB would fail a
 * reader that is only a moment behind. New calls on a connection at its budget wait for room
 * (see {@link room}); a connection that sends nothing while they wait is the one refused.
 */
export class UnsentBudget {
  readonly #limit: number;
  readonly #overdraftLimit: number;
  readonly #held = new Map<string, number>();
  /** Bytes held past their connection's limit, over every connection. */
  #overdraft = 0;
  /** Connections refused an answer since they last had bytes sent: they get no new work until then. */
  readonly #refused = new Set<string>();
  readonly #waiting = new Map<string, Set<() => void>>();
  /** Bytes sent on each connection that calls wait on, since the first of them began waiting. */
  readonly #sentWhileWaiting = new Map<string, number>();

  /**
   * `limit`: the bytes one connection may hold (`maxUnsentBytes`); `overdraftLimit`: the bytes
   * all connections together may hold past their own limits (`maxTotalUnsentBytes`).
   */
  constructor(limit: number, overdraftLimit = 0) {
    this.#limit = limit;
    this.#overdraftLimit = overdraftLimit;
  }

  /** Bytes held past their connection's limit, over every connection. */
  get overdraft(): number {
    return this.#overdraft;
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
   * within maxFrameBytes) still goes out, alone. Past the connection's budget, an answer fits
   * while the server's shared overdraft has room for the part of it past the budget.
   */
  fits(peer: string, bytes: number): boolean {
    const held = this.held(peer);
    if (held === 0 || held + bytes <= this.#limit) return true;
    const past = held + bytes - Math.max(held, this.#limit);
    if (this.#overdraft + past <= this.#overdraftLimit) return true;
    this.#refused.add(peer);
    return false;
  }

  /** A tally of one call's bytes on `peer`'s connection; close it when the call is over. */
  hold(peer: string): CallHold {
    return new CallHold(this, peer);
  }

  /**
   * Resolves true once `peer`'s connection is open to new work (see {@link open}); false when
   * `signal` aborts, or when the connection sends none of what it holds for a whole `stallMs`
   * (its peer has stopped reading). One promise and one timer per wait, however often the
   * connection's bytes move meanwhile.
   */
  room(peer: string, signal: AbortSignal, stallMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    if (this.open(peer)) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let waiters = this.#waiting.get(peer);
      if (waiters === undefined) this.#waiting.set(peer, (waiters = new Set()));
      // Counted from here on: remove() counts only for connections with an entry.
      if (!this.#sentWhileWaiting.has(peer)) this.#sentWhileWaiting.set(peer, 0);
      let sentBefore = this.#sentWhileWaiting.get(peer)!;
      const finish = (result: boolean): void => {
        waiters.delete(onRoom);
        signal.removeEventListener('abort', onAbort);
        if (timer !== undefined) clearInterval(timer);
        if (waiters.size === 0 && this.#waiting.get(peer) === waiters) {
          this.#waiting.delete(peer);
          this.#sentWhileWaiting.delete(peer);
        }
        resolve(result);
      };
      const onRoom = (): void => {
        if (this.open(peer)) finish(true);
      };
      const onAbort = (): void => finish(false);
      const timer = Number.isFinite(stallMs)
        ? setInterval(() => {
            if (this.open(peer)) return finish(true);
            const sent = this.#sentWhileWaiting.get(peer) ?? 0;
            if (sent === sentBefore) return finish(false);
            sentBefore = sent;
          }, stallMs)
        : undefined;
      waiters.add(onRoom);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** @private Counts bytes queued on `peer`'s connection (through a {@link CallHold}). */
  add(peer: string, bytes: number): void {
    const held = this.held(peer);
    this.#held.set(peer, held + bytes);
    this.#overdraft += Math.max(0, held + bytes - this.#limit) - Math.max(0, held - this.#limit);
  }

  /** @private Forgets bytes sent or dropped, and wakes the calls waiting for room. */
  remove(peer: string, bytes: number): void {
    // Runs once per chunk written (grpc-js's write callback): no lookup or copy that is not needed.
    if (bytes > 0 && this.#refused.size > 0) this.#refused.delete(peer);
    const held = this.held(peer);
    const left = held - bytes;
    if (left <= 0) this.#held.delete(peer);
    else this.#held.set(peer, left);
    if (held > this.#limit) this.#overdraft -= held - Math.max(left, this.#limit);
    if (this.#waiting.size === 0) return;
    const sent = this.#sentWhileWaiting.get(peer);
    if (sent !== undefined && bytes > 0) this.#sentWhileWaiting.set(peer, sent + bytes);
    if (left >= this.#limit) return;
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
