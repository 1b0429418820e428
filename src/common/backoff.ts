/** Reconnect backoff parameters (gRPC connection-backoff.md names). */
export interface BackoffOptions {
  /** First delay after a failure, ms. */
  initialMs: number;
  /** Largest delay, ms. */
  maxMs: number;
  /** Growth factor per consecutive failure. */
  multiplier: number;
  /** Relative random spread, 0..1: a delay d becomes d * (1 ± jitter). */
  jitter: number;
}

/** gRPC's defaults, except a 30 s cap: a GPU worker that restarts is usually back well before 120 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, multiplier: 1.6, jitter: 0.2 };

/**
 * Exponential backoff with jitter, so that many consumers who lost the same provider do not
 * reconnect in lockstep. `next()` gives the next delay; `reset()` after a success.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  #current: number;

  constructor(options: BackoffOptions) {
    this.#options = options;
    this.#current = options.initialMs;
  }

  next(): number {
    const base = this.#current;
    this.#current = Math.min(this.#options.maxMs, this.#current * this.#options.multiplier);
    const spread = base * this.#options.jitter;
    return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread));
  }

  reset(): void {
    this.#current = this.#options.initialMs;
  }
}
