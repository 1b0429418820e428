/**
 * A budget of bytes shared by the connections of one server (for example the partial frames
 * they buffer together). A connection charges what it holds and gives it back when it lets go;
 * one that finds the budget spent waits — stops reading from its peer — until another gives
 * bytes back. Waiters are woken in arrival order, and only while there is room.
 */
export class ByteBudget {
  readonly limit: number;
  #used = 0;
  readonly #waiters = new Set<() => void>();

  constructor(limit: number) {
    this.limit = limit;
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

  /** Calls `wake` once when there is room again; returns a function that withdraws the wait. */
  wait(wake: () => void): () => void {
    this.#waiters.add(wake);
    return () => this.#waiters.delete(wake);
  }

  #wake(): void {
    for (const waiter of this.#waiters) {
      if (this.#used > this.limit) return;
      this.#waiters.delete(waiter);
      waiter();
    }
  }
}
