/** Bounds of a {@link RetryAfterEstimator}'s hints. */
export interface RetryAfterBounds {
  /** The service time assumed until a call has completed (ms). */
  readonly initialServiceMs: number;
  /** No hint is shorter (ms): a retry sooner than this would only be refused again. */
  readonly minMs: number;
  /** No hint is longer (ms): beyond it, the load picture is too old to promise anything. */
  readonly maxMs: number;
}

/** How fast the mean service time follows new calls: the last ~20 calls dominate. */
const SMOOTHING = 0.05;

/**
 * Tells a refused caller when a slot is likely to be free, from what the provider knows:
 * `slots` calls run at once, each takes the mean service time (an exponentially weighted mean
 * of completed calls, streams counted until they end), so a slot frees every
 * `serviceMs / slots` on average. A caller refused while others were already refused since the
 * last slot freed is further back in line: the hint is `position x serviceMs / slots`.
 * Bounded to [minMs, maxMs], then jittered uniformly over [hint / 2, hint x 1.5] (never past
 * the bounds), so the callers refused together do not all come back at the same instant.
 */
export class RetryAfterEstimator {
  readonly #bounds: RetryAfterBounds;
  readonly #random: () => number;
  #serviceMs: number;
  /** Refusals since the last slot freed: the callers already waiting for the next one. */
  #waiting = 0;

  constructor(bounds: RetryAfterBounds, random: () => number = Math.random) {
    this.#bounds = bounds;
    this.#random = random;
    this.#serviceMs = bounds.initialServiceMs;
  }

  /** The mean service time now (ms), for tests and metrics. */
  get serviceMs(): number {
    return this.#serviceMs;
  }

  /** A call left its slot after `ms`. */
  completed(ms: number): void {
    this.#serviceMs += SMOOTHING * (Math.max(0, ms) - this.#serviceMs);
    this.#waiting = 0;
  }

  /** A call was refused with `slots` busy: the retry-after hint to give it (ms, an integer). */
  refused(slots: number): number {
    this.#waiting++;
    const { minMs, maxMs } = this.#bounds;
    const expected = Math.min(maxMs, Math.max(minMs, (this.#waiting * this.#serviceMs) / Math.max(1, slots)));
    const jittered = expected * (0.5 + this.#random());
    return Math.round(Math.min(maxMs, Math.max(minMs, jittered)));
  }
}
