import { invalidOption } from '../common/validate.js';

/** Options of a {@link RetryBudget} (gRFC A6's `retryThrottling`). */
export interface RetryBudgetOptions {
  /** Tokens a successful attempt earns back (A6's `tokenRatio`), 0.001 to 10, kept to thousandths. */
  readonly ratio: number;
  /** Size of the bucket, which starts full (A6's `maxTokens`), 1 to 1000. */
  readonly maxTokens: number;
}

/*
 * A6's example is 10 tokens; here the default is 100 because the bucket must absorb one
 * provider's death without refusing retries of healthy work: every call in flight on it fails
 * at once, and with 10 tokens only 5 failures fit above the threshold (measured: 12 workers,
 * one of 3 providers SIGKILLed or hung, 4 to 6 idempotent calls failed with 10, none with 100).
 * The ratio still bounds the steady state: once the bucket is at half, a failing fleet gets
 * one retry per ten successes.
 */
export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { ratio: 0.1, maxTokens: 100 };

/** Fixed point: the bucket counts thousandths of a token, so ten successes of 0.1 earn exactly 1. */
const MILLI = 1000;

/**
 * A client's retry throttle, as gRPC specifies it (gRFC A6, "Retry Throttling"). The bucket
 * starts full at `maxTokens`; every attempt that fails for a provider-side reason costs one
 * token, every success earns `ratio`; retries (and hedges) are allowed only while more than
 * half the bucket remains. A fresh client therefore retries its first failures at once, and a
 * fleet that keeps failing drains the bucket to the threshold, after which retries stop until
 * successes refill it — no retry storm, whatever the number of providers.
 *
 * Attempts that provably never reached a provider are neither charged nor throttled (the
 * strategies cap those per call instead): they cost the fleet nothing.
 */
export class RetryBudget {
  readonly #max: number;
  readonly #ratio: number;
  readonly #unlimited: boolean;
  #tokens: number;
  /** Counters for tests and metrics: retries allowed, retries refused. */
  retries = 0;
  refused = 0;

  /** `false`: never refuses a retry (the client's `retryBudget: false`). */
  constructor(options: RetryBudgetOptions | false = DEFAULT_RETRY_BUDGET) {
    this.#unlimited = options === false;
    const { ratio, maxTokens } = options === false ? DEFAULT_RETRY_BUDGET : options;
    if (typeof ratio !== 'number' || !(ratio >= 0.001 && ratio <= 10)) throw invalidOption('retryBudget.ratio', ratio, 'a number from 0.001 to 10');
    if (typeof maxTokens !== 'number' || !(maxTokens >= 1 && maxTokens <= 1000))
      throw invalidOption('retryBudget.maxTokens', maxTokens, 'a number from 1 to 1000');
    this.#max = Math.round(maxTokens * MILLI);
    this.#ratio = Math.round(ratio * MILLI);
    this.#tokens = this.#max;
  }

  /** Tokens in the bucket now (for tests and metrics). */
  get tokens(): number {
    return this.#tokens / MILLI;
  }

  /** Records an attempt that succeeded. */
  recordSuccess(): void {
    this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio);
  }

  /** Records an attempt that failed for a provider-side reason (not the caller's, not never-sent). */
  recordFailure(): void {
    this.#tokens = Math.max(0, this.#tokens - MILLI);
  }

  /** Whether one more attempt (a retry or a hedge) may be made now; counts the answer. */
  allowRetry(): boolean {
    // Strictly more than half: A6 throttles at token_count <= max_tokens / 2.
    if (this.#unlimited || this.#tokens * 2 > this.#max) {
      this.retries++;
      return true;
    }
    this.refused++;
    return false;
  }
}
