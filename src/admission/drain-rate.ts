/**
 * The rate at which the queue's calls end, measured over the last `size` releases: the basis
 * of the Retry-After it suggests and of its guess whether a call can be admitted before its
 * deadline. A ring of timestamps, so memory is fixed whatever the traffic.
 */
export class DrainRate {
  readonly #times: Float64Array;
  #count = 0;
  #next = 0;
  /** When the queue last went idle (nothing running or waiting), while it stays so. */
  #idleSince: number | undefined;

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

  /** The queue has nothing running or waiting from `now`: time without work is no stall. */
  idle(now: number): void {
    this.#idleSince ??= now;
  }

  /**
   * The queue has work again: the idle time is taken out of the window, as if the releases
   * before it had come just before the work resumed. Otherwise a gateway idle for a minute
   * would see a rate near zero and refuse the first burst as unable to meet its deadlines.
   */
  busy(now: number): void {
    const since = this.#idleSince;
    if (since === undefined) return;
    this.#idleSince = undefined;
    const gap = now - since;
    if (gap <= 0) return;
    for (let i = 0; i < this.#count; i++) this.#times[i]! += gap;
  }

  /**
   * Releases per ms over the remembered window, counted up to `now` (so a stall lowers the
   * rate; time while the queue was idle does not count), or undefined with fewer than 2
   * releases remembered.
   */
  perMs(now: number): number | undefined {
    if (this.#count < 2) return undefined;
    const oldest = this.#times[this.#count < this.#times.length ? 0 : this.#next]!;
    const span = Math.max((this.#idleSince ?? now) - oldest, 1);
    return (this.#count - 1) / span;
  }
}
