/**
 * The rate at which the queue's calls end, measured over the last `size` releases: the basis
 * of the Retry-After it suggests and of its guess whether a call can be admitted before its
 * deadline. A ring of timestamps, so memory is fixed whatever the traffic.
 */
export class DrainRate {
  readonly #times: Float64Array;
  #count = 0;
  #next = 0;

  /** @param size releases remembered (at least 2). */
  constructor(size = 64) {
    this.#times = new Float64Array(Math.max(2, size));
  }

  /** Records one release at `now`. */
  record(now: number): void {
    this.#times[this.#next] = now;
    this.#next = (this.#next + 1) % this.#times.length;
    if (this.#count < this.#times.length) this.#count++;
  }

  /**
   * Releases per ms over the remembered window, counted up to `now` (so a stall lowers the rate),
   * or undefined with fewer than 2 releases remembered.
   */
  perMs(now: number): number | undefined {
    if (this.#count < 2) return undefined;
    const oldest = this.#times[this.#count < this.#times.length ? 0 : this.#next]!;
    const span = Math.max(now - oldest, 1);
    return (this.#count - 1) / span;
  }
}
