/**
 * An AbortController made only when someone asks for its signal. Creating an AbortSignal costs
 * more than the rest of a small unary call on the provider (it was the largest single item in
 * the bench:unary profile), and most unary handlers never look at it; cancellation still works
 * for those that do, including when they first look after the abort.
 */
export class LazyAbort {
  /** The call's absolute local deadline, if it has one. */
  readonly deadline: number | undefined;
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(deadline?: number) {
    this.deadline = deadline;
  }

  /** Whether {@link abort} was called. */
  get aborted(): boolean {
    return this.#aborted;
  }

  /** Why it was aborted (undefined until then). */
  get reason(): unknown {
    return this.#reason;
  }

  /** The signal; created on first access, already aborted if the call was. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /**
   * Whether the consumer is gone (it sent CANCEL, or its connection closed), so nothing more
   * may be sent for this call.
   */
  get callerLeft(): boolean {
    return this.#aborted && (this.#reason as { details?: { callerLeft?: unknown } } | undefined)?.details?.callerLeft === true;
  }

  /** Aborts once; later calls are ignored. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
