/**
 * A budget of bytes shared by the connections of one server (for example the partial frames
 * they buffer together). A connection charges what it holds and gives it back when it lets go;
 * one that finds the budget spent waits — stops reading from its peer — until another gives
 * bytes back. Waiters are woken in arrival order, and only while there is room.
 *
 * Progress: when every holder waits on the others (each holds part of something it can only
 * give back once it is whole, as a partial frame), nobody would ever give back. One holder at a
 * time may therefore take an overdraft — go on past the limit until it can give back — and when
 * it ends, the first waiter is woken to take the next. The bytes held never pass the limit by
 * more than what one overdraft needs.
 */
export class ByteBudget {
  readonly limit: number;
  #used = 0;
  /** Each waiter and the bytes it needs room for. */
  readonly #waiters = new Map<() => void, number>();
  readonly #overdrafts: boolean;
  #overdrawer: object | undefined;

  /** With `overdrafts`, holders may take turns past a spent budget (see {@link overdraw}). */
  constructor(limit: number, options: { overdrafts?: boolean } = {}) {
    this.limit = limit;
    this.#overdrafts = options.overdrafts ?? false;
  }

  /** Bytes charged now. */
  get used(): number {
    return this.#used;
  }

  /** Whether the charged bytes are above the limit. */
  get exhausted(): boolean {
    return this.#used > this.limit;
  }

  /** Adds `delta` (negative to give back) and wakes waiters while there is room. */
  charge(delta: number): void {
    this.#used += delta;
    if (delta < 0) this.#wake();
  }

  /**
   * Lets `holder` go on past the limit until {@link endOverdraft}; false while another holds it.
   * Asking again while holding it is a yes.
   */
  overdraw(holder: object): boolean {
    if (!this.#overdrafts) return false;
    if (this.#overdrawer !== undefined && this.#overdrawer !== holder) return false;
    this.#overdrawer = holder;
    return true;
  }

  /** `holder` no longer needs the overdraft: the next waiter is woken to take it if need be. */
  endOverdraft(holder: object): void {
    if (this.#overdrawer !== holder) return;
    this.#overdrawer = undefined;
    this.#wake();
  }

  /**
   * Calls `wake` once when there is room again — room for `need` more bytes, if given; returns a
   * function that withdraws the wait. Waiters are woken in arrival order: one whose need does not
   * fit yet keeps those behind it waiting, so a large need is not starved by smaller ones.
   */
  wait(wake: () => void, need = 0): () => void {
    this.#waiters.set(wake, need);
    return () => this.#waiters.delete(wake);
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    // A copy: a woken waiter that finds the budget still spent waits again, and must not be
    // visited twice in one round.
    for (const [waiter, need] of [...this.#waiters]) {
      if (this.#used + need > this.limit) {
        // Spent: without overdrafts nobody may go on; with them, one at a time.
        if (!this.#overdrafts || this.#overdrawer !== undefined) return;
      }
      if (!this.#waiters.delete(waiter)) continue;
      // With room, every waiter goes on; spent, waiters are woken one at a time until one of
      // them takes the overdraft.
      waiter();
    }
  }
}
