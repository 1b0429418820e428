import { RpcCode, RpcError } from '../errors/errors.js';
import {
  systemClock,
  type Admission,
  type AdmissionClock,
  type AdmissionObserver,
  type AdmissionOptions,
  type AdmissionRequest,
  type AdmissionStats,
  type RefusalReason,
  type Ticket,
} from './admission.js';
import { DrainRate } from './drain-rate.js';
import { checkRequest, MAX_PRIORITY, resolveOptions, type ResolvedAdmissionOptions } from './options.js';
import { TenantState, type Waiter } from './tenant.js';
import { estimateWaitMs, retryAfterMs } from './wait-estimate.js';
import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';

/** Refilling idle tenants looked at per admission (see AdmissionQueue's sweep): more than it notes. */
const SWEEP_PER_ADMIT = 2;

/**
 * A bounded admission queue (see admission.ts for the contract). Calls start at once while the
 * fleet has room; otherwise they wait, bounded by count and estimated tokens (in all and per
 * tenant), each until its own deadline. A free slot goes to the highest priority with a waiter
 * whose tenant is within its caps, and within a priority to the tenant with the smallest virtual
 * token counter (see TenantState): work-conserving, so a tenant alone gets the whole fleet.
 *
 * Memory is bounded by the queue's bounds: one waiter (with one timer and one abort listener)
 * per queued call, and one TenantState per tenant holding calls or still refilling its bucket.
 */
export class AdmissionQueue implements Admission {
  readonly #options: ResolvedAdmissionOptions;
  readonly #capacity: () => number;
  readonly #clock: AdmissionClock;
  readonly #observer: AdmissionObserver;
  readonly #tenants = new Map<string, TenantState>();
  /**
   * Idle tenants kept only because their token bucket was still refilling when they went idle,
   * oldest first: nothing else looks at a tenant that never calls again, so {@link #sweep} checks
   * a few of them at every admission and forgets those whose bucket has filled since.
   */
  readonly #refilling = new Set<TenantState>();
  /** Tenants with at least one waiter. */
  readonly #waiting = new Set<TenantState>();
  readonly #queuedByPriority = new Map<number, number>();
  readonly #drain = new DrainRate();
  #running = 0;
  #queued = 0;
  #queuedTokens = 0;
  #cancelWake: (() => void) | undefined;

  constructor(options: AdmissionOptions) {
    this.#options = resolveOptions(options);
    this.#capacity = options.capacity;
    this.#clock = options.clock ?? systemClock;
    this.#observer = options.observer ?? {};
  }

  admit(request: AdmissionRequest): Promise<Ticket> {
    let priority = checkRequest(request);
    const now = this.#clock.now();
    this.#sweep(now);
    const refuse = (reason: RefusalReason, error: RpcError): Promise<Ticket> => {
      this.#observer.refused?.(request.tenant, priority, reason);
      return Promise.reject(error);
    };
    if (request.signal?.aborted) return refuse('cancelled', abortError(request.signal));
    if (request.deadline <= now) return refuse('deadline_exceeded', new RpcError(RpcCode.DEADLINE_EXCEEDED, 'the call reached its deadline before admission'));
    // Waiters first; afterwards free room means every waiter is held back by its tenant's caps.
    this.#pump();
    const tenant = this.#tenant(request.tenant, now);
    // A tenant's calls run at most at its maxPriority, whatever they ask for.
    priority = Math.min(priority, tenant.limits.maxPriority);
    if (this.#running < this.#capacityFor(priority, this.#capacity()) && tenant.blockedForMs(now) === 0) {
      return Promise.resolve(this.#start(tenant, priority, request.tokens, now, now));
    }
    let full = this.#fullReason(tenant, request.tokens);
    // A full queue makes room for a tenant that holds less of it than another does, by pushing
    // out that other tenant's newest call of no higher priority (as fair queues drop from the
    // fattest flow): one tenant filling the queue must not shut every other out of it.
    if ((full === 'queue_full' || full === 'queue_tokens') && this.#pushOutFor(tenant, priority, request.tokens, full, now)) {
      full = this.#fullReason(tenant, request.tokens);
    }
    if (full !== undefined) {
      this.#forget(tenant, now);
      return refuse(full, this.#refusal(full, priority, tenant, now, request.deadline));
    }
    // A tenant whose token bucket refills only after the deadline cannot start in time, however
    // the queue drains: told so at once, with the refill as its Retry-After, rather than held
    // until its deadline and refused with nothing to go by.
    const refillMs = tenant.blockedForMs(now);
    if (refillMs !== Infinity && refillMs > request.deadline - now) {
      this.#forget(tenant, now);
      return refuse(
        'deadline_unmeetable',
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `tenant ${JSON.stringify(tenant.name)} has spent its tokensPerMinute (${tenant.limits.tokensPerMinute}); its bucket refills in ${refillMs} ms, more than the ${Math.round(request.deadline - now)} ms left before the call's deadline`,
          { retryAfterMs: refillMs, details: { reason: 'deadline_unmeetable' } },
        ),
      );
    }
    const waitMs = estimateWaitMs(this.#drain.perMs(now), this.#ahead(priority, tenant));
    if (waitMs !== undefined && waitMs > request.deadline - now) {
      this.#forget(tenant, now);
      return refuse('deadline_unmeetable', this.#refusal('deadline_unmeetable', priority, tenant, now, request.deadline));
    }
    return this.#enqueue(request, tenant, priority, now);
  }

  wake(): void {
    this.#pump();
  }

  stats(): AdmissionStats {
    const byTenant = new Map<string, number>();
    for (const tenant of this.#waiting) byTenant.set(tenant.name, tenant.queued);
    return {
      running: this.#running,
      queued: this.#queued,
      queuedTokens: this.#queuedTokens,
      queuedByPriority: new Map(this.#queuedByPriority),
      queuedByTenant: byTenant,
      tenants: this.#tenants.size,
      drainPerSecond: scale(this.#drain.perMs(this.#clock.now()), 1000),
    };
  }

  #enqueue(request: AdmissionRequest, tenant: TenantState, priority: number, now: number): Promise<Ticket> {
    return new Promise<Ticket>((resolve, reject) => {
      const signal = request.signal;
      const leave = (reason: RefusalReason, error: RpcError): void => {
        if (!this.#dequeue(waiter)) return;
        cleanup();
        this.#observer.refused?.(tenant.name, priority, reason);
        this.#forget(tenant, this.#clock.now());
        reject(error);
        // A waiter blocked by its tenant's caps may have held others back at this priority.
        this.#pump();
      };
      const onAbort = (): void => leave('cancelled', abortError(signal!));
      const cancelTimer = this.#clock.schedule(request.deadline - now, () =>
        leave(
          'deadline_exceeded',
          new RpcError(
            RpcCode.DEADLINE_EXCEEDED,
            `waited ${Math.round(this.#clock.now() - now)} ms in the admission queue without a free slot; the call's deadline passed`,
          ),
        ),
      );
      const waiter: Waiter = {
        tenant,
        priority,
        tokens: request.tokens,
        enqueuedAt: now,
        settle: () => {
          cleanup();
          resolve(this.#start(tenant, priority, request.tokens, now, this.#clock.now()));
        },
        pushOut: (reason, error) => leave(reason, error as RpcError),
      };
      const cleanup = (): void => {
        cancelTimer();
        unlistenAbort(signal, onAbort);
      };
      listenAbort(signal, onAbort);
      tenant.enqueue(waiter);
      this.#waiting.add(tenant);
      this.#queued++;
      this.#queuedTokens += request.tokens;
      this.#queuedByPriority.set(priority, (this.#queuedByPriority.get(priority) ?? 0) + 1);
      // Arms the wake-up for a tenant held only by its token bucket (admits nothing otherwise:
      // the fleet is full or every waiter's tenant is held back).
      this.#pump();
    });
  }

  /** Takes a waiter out of every count; false when it already left. */
  #dequeue(waiter: Waiter): boolean {
    if (!waiter.tenant.remove(waiter)) return false;
    if (waiter.tenant.queued === 0) this.#waiting.delete(waiter.tenant);
    this.#queued--;
    this.#queuedTokens -= waiter.tokens;
    const left = this.#queuedByPriority.get(waiter.priority)! - 1;
    if (left === 0) this.#queuedByPriority.delete(waiter.priority);
    else this.#queuedByPriority.set(waiter.priority, left);
    return true;
  }

  /** Admits waiters while the fleet has room, best first; arms a wake-up for token buckets. */
  #pump(): void {
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    let soonest = Infinity;
    for (let capacity = this.#capacity(); this.#queued > 0 && this.#running < this.#capacityFor(MAX_PRIORITY, capacity); capacity = this.#capacity()) {
      const now = this.#clock.now();
      const pick = this.#best(now, capacity);
      if (pick.waiter === undefined) {
        soonest = pick.blockedMs;
        break;
      }
      this.#dequeue(pick.waiter);
      pick.waiter.settle();
    }
    if (soonest !== Infinity) this.#cancelWake = this.#clock.schedule(soonest, () => this.#pump());
  }

  /** The next waiter to admit, or how long until a tenant's token bucket lets one go. */
  #best(now: number, capacity: number): { waiter?: Waiter; blockedMs: number } {
    let blockedMs = Infinity;
    const priorities = [...this.#queuedByPriority.keys()].sort((a, b) => b - a);
    for (const priority of priorities) {
      if (this.#running >= this.#capacityFor(priority, capacity)) break;
      let best: TenantState | undefined;
      for (const tenant of this.#waiting) {
        if (tenant.queuedAt(priority) === 0) continue;
        const blocked = tenant.blockedForMs(now);
        if (blocked > 0) {
          blockedMs = Math.min(blockedMs, blocked);
          continue;
        }
        if (
          best === undefined ||
          tenant.counter < best.counter ||
          (tenant.counter === best.counter && tenant.head(priority)!.enqueuedAt < best.head(priority)!.enqueuedAt)
        )
          best = tenant;
      }
      if (best !== undefined) return { waiter: best.head(priority)!, blockedMs };
    }
    return { blockedMs };
  }

  #start(tenant: TenantState, priority: number, tokens: number, enqueuedAt: number, now: number): Ticket {
    this.#drain.busy(now);
    this.#running++;
    tenant.running++;
    tenant.charge(tokens, now);
    const waitedMs = now - enqueuedAt;
    this.#observer.admitted?.(tenant.name, priority, waitedMs);
    let released = false;
    return {
      waitedMs,
      release: (actualTokens?: number) => {
        if (released) return;
        released = true;
        const at = this.#clock.now();
        this.#running--;
        tenant.running--;
        if (actualTokens !== undefined && Number.isFinite(actualTokens) && actualTokens >= 0) tenant.charge(actualTokens - tokens, at);
        this.#drain.record(at);
        this.#forget(tenant, at);
        this.#pump();
        if (this.#running === 0 && this.#queued === 0) this.#drain.idle(at);
      },
    };
  }

  /**
   * The slots calls of `priority` may fill: all of them, less the reserve when below its
   * priority, plus the overcommit when at or above its priority.
   */
  #capacityFor(priority: number, capacity: number): number {
    const { reserve, overcommit } = this.#options;
    let slots = capacity;
    if (reserve !== undefined && priority < reserve.priority) slots -= reserve.slots;
    // No fleet, no engine to pause work on: an empty fleet admits nobody.
    if (overcommit !== undefined && priority >= overcommit.priority && capacity > 0) slots += overcommit.slots;
    return slots;
  }

  /** The tenant's state; a tenant turning busy is lifted to the smallest busy counter (no banked credit). */
  #tenant(name: string, now: number): TenantState {
    let tenant = this.#tenants.get(name);
    if (tenant === undefined) this.#tenants.set(name, (tenant = new TenantState(name, this.#options.limitsOf(name), now)));
    if (tenant.idle) {
      let floor = Infinity;
      for (const other of this.#tenants.values()) if (other !== tenant && !other.idle) floor = Math.min(floor, other.counter);
      if (floor !== Infinity && floor > tenant.counter) tenant.counter = floor;
    }
    return tenant;
  }

  /**
   * Drops an idle tenant with nothing left to remember, so tenant names cannot grow memory; an
   * idle tenant whose bucket is still refilling is noted for {@link #sweep} instead.
   */
  #forget(tenant: TenantState, now: number): void {
    if (!tenant.idle) return;
    if (tenant.bucketFull(now)) {
      this.#tenants.delete(tenant.name);
      this.#refilling.delete(tenant);
    } else this.#refilling.add(tenant);
  }

  /**
   * Looks at the {@link SWEEP_PER_ADMIT} tenants noted longest ago as refilling: forgets those
   * whose bucket is full by now, puts those still refilling back at the end, and lets go of
   * those that turned busy (their release notes them again). Each admission notes at most one
   * tenant and looks at two, so the tenants kept are those really refilling, not every tenant
   * that ever spent tokens (a gateway whose callers name themselves by address or header had one
   * record per name ever seen).
   */
  #sweep(now: number): void {
    for (let i = 0; i < SWEEP_PER_ADMIT && this.#refilling.size > 0; i++) {
      const tenant: TenantState = this.#refilling.values().next().value!;
      this.#refilling.delete(tenant);
      if (this.#tenants.get(tenant.name) !== tenant || !tenant.idle) continue;
      if (tenant.bucketFull(now)) this.#tenants.delete(tenant.name);
      else this.#refilling.add(tenant);
    }
  }

  /**
   * Pushes out waiters of the tenant that holds the most of what is full (calls, or tokens)
   * while the queue has no room for `tokens` of `tenant` and that tenant would still hold more
   * than `tenant` with the new call; never a waiter of higher priority than `priority`. Whether
   * any was pushed out.
   */
  #pushOutFor(tenant: TenantState, priority: number, tokens: number, full: 'queue_full' | 'queue_tokens', now: number): boolean {
    const held = (each: TenantState): number => (full === 'queue_full' ? each.queued : each.queuedTokens);
    const wanted = full === 'queue_full' ? 1 : tokens;
    let pushed = false;
    while (full === 'queue_full' ? this.#queued >= this.#options.maxQueued : this.#queuedTokens + tokens > this.#options.maxQueuedTokens) {
      let fattest: TenantState | undefined;
      for (const each of this.#waiting) if (each !== tenant && (fattest === undefined || held(each) > held(fattest))) fattest = each;
      if (fattest === undefined || held(fattest) <= held(tenant) + wanted) return pushed;
      const victim = fattest.newest();
      if (victim === undefined || victim.priority > priority) return pushed;
      victim.pushOut(full, this.#refusal(full, victim.priority, fattest, now, Infinity));
      pushed = true;
    }
    return pushed;
  }

  #fullReason(tenant: TenantState, tokens: number): RefusalReason | undefined {
    if (this.#queued >= this.#options.maxQueued) return 'queue_full';
    if (this.#queuedTokens + tokens > this.#options.maxQueuedTokens) return 'queue_tokens';
    if (tenant.queued >= tenant.limits.maxQueued) return 'tenant_queue_full';
    return undefined;
  }

  /**
   * Calls that would be admitted before a new one of `tenant` at `priority`: all waiters of
   * higher priorities, and at its own priority each tenant's waiters up to one more than this
   * tenant has queued (fair share interleaves the tenants).
   */
  #ahead(priority: number, tenant: TenantState): number {
    let ahead = 0;
    for (const [p, count] of this.#queuedByPriority) if (p > priority) ahead += count;
    const own = tenant.queuedAt(priority) + 1;
    for (const other of this.#waiting) ahead += Math.min(other.queuedAt(priority), own);
    return ahead;
  }

  #refusal(reason: RefusalReason, priority: number, tenant: TenantState, now: number, deadline: number): RpcError {
    const ahead = this.#ahead(priority, tenant);
    const retryMs = retryAfterMs(this.#drain.perMs(now), ahead, this.#options.defaultRetryAfterMs);
    const why: Record<string, string> = {
      queue_full: `the admission queue is full (${this.#queued} calls waiting, maxQueued ${this.#options.maxQueued})`,
      queue_tokens: `the admission queue holds its most tokens (${this.#queuedTokens} waiting, maxQueuedTokens ${this.#options.maxQueuedTokens})`,
      tenant_queue_full: `tenant ${JSON.stringify(tenant.name)} has ${tenant.queued} calls waiting, its maxQueued`,
      deadline_unmeetable: `about ${Math.round(estimateWaitMs(this.#drain.perMs(now), ahead) ?? 0)} ms of queue ahead, more than the ${Math.round(deadline - now)} ms left before the call's deadline`,
    };
    return new RpcError(RpcCode.RESOURCE_EXHAUSTED, `${why[reason]}; retry in ${retryMs} ms`, { retryAfterMs: retryMs, details: { reason } });
  }
}

function abortError(signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  return reason instanceof RpcError ? reason : new RpcError(RpcCode.CANCELLED, 'the caller gave up while waiting for admission', { cause: reason });
}

function scale(value: number | undefined, by: number): number | undefined {
  return value === undefined ? undefined : value * by;
}
