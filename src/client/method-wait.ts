/**
 * How many methods (service and method name pairs) one client tracks apart for the stall rule.
 * The names come from calls to whatever a provider lists, so a consumer that forwards names it
 * was given (a gateway) could otherwise grow this without end; the methods past the cap share
 * one record, judged together as a whole provider was before methods were told apart.
 */
export const MAX_TRACKED_METHODS = 64;

/**
 * One method of one service as a client's stall rule knows it: made once per client and
 * method, shared by every provider's {@link MethodWait} of it.
 */
export class MethodKey {
  /**
   * The slowest typical time among one candidate list at one instant, kept so that one pass of
   * the rule looks it up once however many providers ask (see `withoutStalled`).
   * @private
   */
  memoViews: readonly unknown[] | undefined;
  /** @private */
  memoAt = Number.NaN;
  /** @private */
  memoSlowestMs = 0;

  /** `index`: this key's place in each provider's table of {@link MethodWait}s. */
  constructor(
    readonly service: string,
    readonly method: string,
    readonly index: number,
  ) {}
}

/** A client's {@link MethodKey}s: at most {@link MAX_TRACKED_METHODS}, then one shared by the rest. */
export class MethodKeys {
  readonly #byService = new Map<string, Map<string, MethodKey>>();
  #count = 0;
  readonly #rest = new MethodKey('', '', MAX_TRACKED_METHODS);

  /** The key of `method` of `service` if calls of it have been counted (past the cap: the shared one), else undefined. */
  find(service: string, method: string): MethodKey | undefined {
    return this.#byService.get(service)?.get(method) ?? (this.#count >= MAX_TRACKED_METHODS ? this.#rest : undefined);
  }

  /** The key of `method` of `service`; past the cap, the one key every further method shares. */
  of(service: string, method: string): MethodKey {
    let methods = this.#byService.get(service);
    const known = methods?.get(method);
    if (known !== undefined) return known;
    if (this.#count >= MAX_TRACKED_METHODS) return this.#rest;
    if (methods === undefined) {
      methods = new Map();
      this.#byService.set(service, methods);
    }
    const key = new MethodKey(service, method, this.#count++);
    methods.set(method, key);
    return key;
  }
}

/** One method's calls from this consumer at one provider, as the stall rule judges them. */
export class MethodWait {
  /** Calls of the method in flight that have had no first answer yet. */
  awaiting = 0;
  /**
   * The later of the moment a call of the method started waiting with none of it waiting
   * before and the method's last answer there: answers to other methods are no news about it.
   */
  since = 0;
  /**
   * How long a successful call of the method waits there for its first answer, ms (a running
   * mean; 0 before the first): a unary call's time, a stream's time to its first chunk — the
   * wait the stall rule measures, not a stream's whole run (with 2 s streams, a limit of four
   * whole runs had kept a stopped worker drawing half the new streams for 8 s).
   */
  typicalMs = 0;
  /**
   * The longest wait of a call of the method that ended here unanswered (its deadline, a
   * cancel) with nothing heard from the provider since it began, ms; counts while the
   * provider's last answer is still {@link unansweredHeardAt}. A hung process's fast calls give
   * up and leave: this keeps what they showed until the provider answers anything.
   */
  unansweredMs = 0;
  /** The provider's last answer when {@link unansweredMs} was recorded. */
  unansweredHeardAt = Number.NaN;
  /**
   * Successful calls' latency sums and counts in the provider's time slices (it rotates them):
   * the method's own average latency there.
   */
  readonly latencySums: Float64Array;
  readonly latencyCounts: Uint32Array;

  /** `slices`: how many time slices the provider's statistics keep. */
  constructor(
    readonly key: MethodKey,
    slices: number,
  ) {
    this.latencySums = new Float64Array(slices);
    this.latencyCounts = new Uint32Array(slices);
  }

  /** A successful call ended; `firstAnswerMs`: how long it waited for its first answer. */
  succeeded(firstAnswerMs: number): void {
    const ms = Math.max(1, firstAnswerMs);
    this.typicalMs = this.typicalMs === 0 ? ms : this.typicalMs + 0.1 * (ms - this.typicalMs);
  }
}
