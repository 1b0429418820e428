import { invalidOption } from '../common/validate.js';

/** Options of a {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Retries earned per call: 0.1 allows at most about 10 % extra attempts. */
  readonly ratio: number;
  /** Most retries that can be saved up for a burst of failures. */
  readonly maxTokens: number;
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { ratio: 0.1, maxTokens: 10 };

/**
 * A client's retry budget (gRPC retry throttling, Finagle's RetryBudget): every call deposits
 * `ratio` of a token, every retry withdraws a whole one, and a retry without a token is not
 * made. However many providers fail, attempts / calls stays at most 1 + ratio (plus whatever
 * was saved up, at most `maxTokens`) — so a failing fleet sees no retry storm. The bucket
 * starts empty: a client's first failures are not retried until it has earned the right.
 */
export class RetryBudget {
  readonly #options: RetryBudgetOptions;
  #tokens = 0;
  /** Counters for tests and metrics. */
  calls = 0;
  retries = 0;
  refused = 0;

  constructor(options: RetryBudgetOptions = DEFAULT_RETRY_BUDGET) {
    if (!(options.ratio >= 0 && options.ratio <= 10)) throw invalidOption('retryBudget.ratio', options.ratio, 'a number from 0 to 10');
    if (!(options.maxTokens >= 0)) throw invalidOption('retryBudget.maxTokens', options.maxTokens, 'a number >= 0');
    this.#options = options;
  }

  /** Records a call (not a retry). */
  deposit(): void {
    this.calls++;
    this.#tokens = Math.min(this.#options.maxTokens, this.#tokens + this.#options.ratio);
  }

  /** Takes a token for one retry; false when the budget is spent. */
  withdraw(): boolean {
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.retries++;
      return true;
    }
    this.refused++;
    return false;
  }
}
