/**
 * Methods whose failures one provider's record tracks at once. Method names come from the
 * consumer's calls, and a caller that makes up names (a gateway passing them through) must not
 * grow the record: past this many, the entry that failed longest ago and is not ejected makes
 * room, and when all are ejected a new name is not tracked (the provider's own run of failures
 * still counts it).
 */
export const MAX_TRACKED_METHODS = 32;

/** One method's run of provider failures at one provider, and its ejection. */
export interface MethodRun {
  consecutive: number;
  ejections: number;
  ejectedUntil: number;
  lastFailureAt: number;
}

/**
 * The per-method view of one provider's health: a method that fails on a worker whose other
 * methods succeed (a broken model behind `generate` while `embed` answers) is ejected for that
 * method alone. The provider's own run of failures cannot see it — each success of another
 * method ends the run — and its breaker's error rate stays under threshold when that method is
 * a small share of the calls. Bounded by {@link MAX_TRACKED_METHODS}.
 */
export class MethodRuns {
  readonly #runs = new Map<string, MethodRun>();

  /** The run of `method`, if tracked. */
  get(method: string): MethodRun | undefined {
    return this.#runs.get(method);
  }

  /** The run of `method`, made on its first failure; undefined when the bound leaves no room. */
  track(method: string, now: number): MethodRun | undefined {
    let run = this.#runs.get(method);
    if (run !== undefined) return run;
    if (this.#runs.size >= MAX_TRACKED_METHODS && !this.#evictOne(now)) return undefined;
    run = { consecutive: 0, ejections: 0, ejectedUntil: 0, lastFailureAt: 0 };
    this.#runs.set(method, run);
    return run;
  }

  /** Whether `method` is ejected at `now`. */
  ejected(method: string, now: number): boolean {
    const run = this.#runs.get(method);
    return run !== undefined && run.ejectedUntil > now;
  }

  /** Whether any method's news must outlive the provider's departure (see ProviderHealth.retainOnly). */
  badNews(now: number, memoryMs: number): boolean {
    for (const run of this.#runs.values()) {
      if (run.ejectedUntil > now) return true;
      if (now - run.lastFailureAt <= memoryMs && (run.consecutive > 0 || run.ejections > 0)) return true;
    }
    return false;
  }

  /** How many methods are tracked (at most {@link MAX_TRACKED_METHODS}). */
  get size(): number {
    return this.#runs.size;
  }

  /** Drops the entry that failed longest ago among those not ejected; false when all are ejected. */
  #evictOne(now: number): boolean {
    let oldest: string | undefined;
    let oldestAt = Infinity;
    for (const [method, run] of this.#runs) {
      if (run.ejectedUntil > now) continue;
      if (run.lastFailureAt < oldestAt) {
        oldestAt = run.lastFailureAt;
        oldest = method;
      }
    }
    if (oldest === undefined) return false;
    this.#runs.delete(oldest);
    return true;
  }
}
