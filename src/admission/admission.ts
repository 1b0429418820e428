/**
 * Call admission in front of a fleet: when every worker is at its slot limit, calls wait in a
 * bounded queue instead of being refused, and leave it in priority order and, within a priority,
 * by weighted fair share across tenants charged in tokens. These are the types every consumer
 * of the queue (the gateway, a simulator, an application) programs against; `AdmissionQueue`
 * in queue.ts implements them.
 */

/** Time and timers for the queue: the real clock by default, a virtual one in tests and simulations. */
export interface AdmissionClock {
  /** Current time in ms (any origin; only differences matter). */
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels it. */
  schedule(ms: number, fn: () => void): () => void;
}

/** Wall-clock time; timers are plain setTimeout (they hold the process only while calls wait). */
export const systemClock: AdmissionClock = {
  now: () => performance.now(),
  schedule: (ms, fn) => {
    const timer = setTimeout(fn, Math.max(0, Math.min(ms, 2_147_483_647)));
    return () => clearTimeout(timer);
  },
};

/** Limits that apply to one tenant (all optional: no limit). */
export interface TenantLimits {
  /** Relative share of capacity when tenants compete; 1 by default. */
  weight?: number;
  /** Calls of this tenant admitted and not yet released, at most. */
  maxConcurrent?: number;
  /** Tokens (estimated at admission, corrected at release) this tenant may be charged per minute. */
  tokensPerMinute?: number;
  /** Calls of this tenant waiting in the queue, at most; half the queue's `maxQueued` by default. */
  maxQueued?: number;
  /**
   * The highest priority this tenant's calls run at (0–9; 9, no cap, by default): a call asking
   * for more runs at this. With API keys, `tenantDefaults: { maxPriority: 1 }` keeps callers
   * without a key from jumping ahead with `x-priority: high`, the keyed tenants being allowed more.
   */
  maxPriority?: number;
}

/** Options of an admission queue. */
export interface AdmissionOptions {
  /**
   * How many calls the fleet behind the queue can run at once right now (for example the sum of
   * the eligible workers' slots). The queue admits while its own admitted-and-unreleased calls
   * are fewer; Infinity admits everything at once. Read on every admission and release; call
   * `wake()` when it grows for another reason (a worker joined).
   */
  capacity: () => number;
  /** Calls waiting, at most (all tenants); 1024 by default. */
  maxQueued?: number;
  /** Estimated tokens of the calls waiting, at most; 4,000,000 by default. */
  maxQueuedTokens?: number;
  /** Limits per named tenant; a tenant not named gets `tenantDefaults`. */
  tenants?: Readonly<Record<string, TenantLimits>>;
  /** Limits of every tenant not in `tenants`. */
  tenantDefaults?: TenantLimits;
  /**
   * Slots kept free for calls of at least `priority`: lower priorities start only while more
   * than `slots` are free. It buys urgent calls a slot without waiting for one to end (their
   * time to first token stays near its unloaded value) at the price of `slots` idle slots when
   * no urgent call comes. None by default.
   */
  reserve?: { priority: number; slots: number };
  /**
   * Calls of at least `priority` may start while the fleet is full, up to `slots` beyond its
   * capacity. For fleets whose engines schedule by priority (vLLM `--scheduling-policy
   * priority`, SGLang `--enable-priority-scheduling`, the simulator's `priority` scheduling):
   * the engine runs such a call at once by pausing lower-priority work, so its time to first
   * token stays near its unloaded value with no slot held idle. Against engines that do not,
   * it only queues the call inside the engine instead of here. None by default.
   */
  overcommit?: { priority: number; slots: number };
  /** Retry-After suggested before any drain rate has been measured, ms; 1000 by default. */
  defaultRetryAfterMs?: number;
  clock?: AdmissionClock;
  /** Told of every admission and refusal (metrics). */
  observer?: AdmissionObserver;
}

/** One call asking to be admitted. */
export interface AdmissionRequest {
  /** Who pays for the call: fair share and caps are per tenant. */
  tenant: string;
  /** Higher is served first; 0 (low) … 9; 1 (normal) by default. */
  priority?: number;
  /**
   * Estimated cost in tokens: prompt tokens not expected from cache plus expected output
   * tokens. Charged to the tenant at admission and corrected by `Ticket.release(actual)`.
   */
  tokens: number;
  /** Absolute deadline on the queue's clock; the call fails DEADLINE_EXCEEDED then if still queued. */
  deadline: number;
  /** Aborting it takes the call out of the queue at once (it fails CANCELLED). */
  signal?: AbortSignal;
}

/** An admitted call's slot. Release it exactly once, when the call ends (later calls are ignored). */
export interface Ticket {
  /** How long the call waited in the queue, ms (0 when admitted at once). */
  readonly waitedMs: number;
  /**
   * Gives the slot back and corrects the tenant's charge with the tokens the call really cost
   * (prompt tokens not served from cache plus output tokens); the estimate stands when omitted.
   */
  release(actualTokens?: number): void;
}

/** Why a call was not admitted. */
export type RefusalReason = 'queue_full' | 'queue_tokens' | 'tenant_queue_full' | 'deadline_unmeetable' | 'deadline_exceeded' | 'cancelled';

/** What the queue tells its observer; every method is optional. */
export interface AdmissionObserver {
  /** A call was admitted after waiting `waitedMs` (0: at once). */
  admitted?(tenant: string, priority: number, waitedMs: number): void;
  /** A call was refused, or left the queue without being admitted. */
  refused?(tenant: string, priority: number, reason: RefusalReason): void;
}

/** A snapshot of the queue for metrics and dashboards. */
export interface AdmissionStats {
  /** Calls admitted and not yet released. */
  readonly running: number;
  readonly queued: number;
  readonly queuedTokens: number;
  /** Calls waiting, by priority. */
  readonly queuedByPriority: ReadonlyMap<number, number>;
  /** Calls waiting, by tenant. */
  readonly queuedByTenant: ReadonlyMap<string, number>;
  /** Tenants the queue keeps state for (busy, or refilling a token bucket). */
  readonly tenants: number;
  /** Measured calls released per second (recent), or undefined before there are enough. */
  readonly drainPerSecond: number | undefined;
}

/** The contract of an admission queue (see `AdmissionQueue`). */
export interface Admission {
  /**
   * Resolves with a ticket once the call may start. Rejects RESOURCE_EXHAUSTED (with
   * `retryAfterMs` from the measured drain rate) when the queue is full or the call could not
   * be admitted before its deadline; DEADLINE_EXCEEDED at the call's own deadline while it
   * waits; CANCELLED (or the signal's RpcError reason) as soon as its signal aborts.
   */
  admit(request: AdmissionRequest): Promise<Ticket>;
  /** Admits waiting calls if capacity grew without a release (a worker joined). */
  wake(): void;
  stats(): AdmissionStats;
}
