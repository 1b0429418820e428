/** One queued call, as the queue keeps it. */
export interface Waiter {
  readonly tenant: TenantState;
  readonly priority: number;
  readonly tokens: number;
  readonly enqueuedAt: number;
  /** Settles the caller's promise: admitted, or failed with the error. */
  settle(error?: Error): void;
  /**
   * Takes the waiter out of the queue and refuses it with `error` (reason `reason`): the queue
   * pushing out a tenant's newest call to make room for a tenant that holds less of it.
   */
  pushOut(reason: 'queue_full' | 'queue_tokens', error: Error): void;
}

/** A tenant's limits with every default filled in. */
export interface ResolvedLimits {
  readonly weight: number;
  readonly maxConcurrent: number;
  readonly tokensPerMinute: number;
  readonly maxQueued: number;
  readonly maxPriority: number;
}

/**
 * What the queue knows of one tenant: its calls waiting (a FIFO per priority), its calls
 * running, its virtual token counter for fair share, and its tokens-per-minute bucket.
 *
 * Fair share follows the virtual token counter (VTC, Sheng et al., OSDI 2024): each tenant's
 * counter grows by the tokens it is charged divided by its weight, the waiting tenant with the
 * smallest counter goes next, and a tenant that becomes busy again is lifted to the smallest
 * counter among busy tenants so that idling earns no credit to burst with later.
 */
export class TenantState {
  readonly name: string;
  readonly limits: ResolvedLimits;
  /** Tokens charged so far divided by weight (see the class comment). */
  counter = 0;
  running = 0;
  queued = 0;
  /** Estimated tokens of this tenant's waiters. */
  queuedTokens = 0;
  readonly #byPriority = new Map<number, Set<Waiter>>();
  #bucket: number;
  #bucketAt: number;

  constructor(name: string, limits: ResolvedLimits, now: number) {
    this.name = name;
    this.limits = limits;
    this.#bucket = limits.tokensPerMinute;
    this.#bucketAt = now;
  }

  /** Whether the tenant holds nothing: no call waiting or running. */
  get idle(): boolean {
    return this.queued === 0 && this.running === 0;
  }

  enqueue(waiter: Waiter): void {
    let fifo = this.#byPriority.get(waiter.priority);
    if (fifo === undefined) this.#byPriority.set(waiter.priority, (fifo = new Set()));
    fifo.add(waiter);
    this.queued++;
    this.queuedTokens += waiter.tokens;
  }

  /** Removes a waiter (admitted, timed out or aborted); false when it was not queued. */
  remove(waiter: Waiter): boolean {
    const fifo = this.#byPriority.get(waiter.priority);
    if (fifo === undefined || !fifo.delete(waiter)) return false;
    if (fifo.size === 0) this.#byPriority.delete(waiter.priority);
    this.queued--;
    this.queuedTokens -= waiter.tokens;
    return true;
  }

  /** The waiter worth least: the newest at the lowest priority. */
  newest(): Waiter | undefined {
    let lowest: Set<Waiter> | undefined;
    let at = Infinity;
    for (const [priority, fifo] of this.#byPriority) {
      if (priority < at) {
        at = priority;
        lowest = fifo;
      }
    }
    let last: Waiter | undefined;
    if (lowest !== undefined) for (const waiter of lowest) last = waiter;
    return last;
  }

  /** The oldest waiter at `priority`, if any. */
  head(priority: number): Waiter | undefined {
    const fifo = this.#byPriority.get(priority);
    return fifo === undefined ? undefined : fifo.values().next().value;
  }

  /** Waiters at `priority`. */
  queuedAt(priority: number): number {
    return this.#byPriority.get(priority)?.size ?? 0;
  }

  /** Priorities at which this tenant has waiters. */
  priorities(): IterableIterator<number> {
    return this.#byPriority.keys();
  }

  /**
   * Ms until the tenant's caps let it start another call: 0 now, Infinity while its concurrency
   * cap is reached (a release ends that), else the time its token bucket needs to refill.
   */
  blockedForMs(now: number): number {
    if (this.running >= this.limits.maxConcurrent) return Infinity;
    if (this.limits.tokensPerMinute === Infinity) return 0;
    const level = this.#level(now);
    return level > 0 ? 0 : Math.ceil((1 - level) / (this.limits.tokensPerMinute / 60_000));
  }

  /** Whether the bucket is full (nothing to remember about this tenant once idle). */
  bucketFull(now: number): boolean {
    return this.#level(now) >= this.limits.tokensPerMinute;
  }

  /** Charges `tokens` (negative: a refund) to the counter and the bucket. */
  charge(tokens: number, now: number): void {
    this.counter += tokens / this.limits.weight;
    if (this.limits.tokensPerMinute !== Infinity) this.#bucket = Math.min(this.#level(now) - tokens, this.limits.tokensPerMinute);
  }

  #level(now: number): number {
    if (this.limits.tokensPerMinute === Infinity) return Infinity;
    const refill = ((now - this.#bucketAt) * this.limits.tokensPerMinute) / 60_000;
    this.#bucket = Math.min(this.limits.tokensPerMinute, this.#bucket + Math.max(refill, 0));
    this.#bucketAt = now;
    return this.#bucket;
  }
}
