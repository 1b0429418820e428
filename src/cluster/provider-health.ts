import CircuitBreaker from 'opossum';
import { RpcCode, RpcError } from '../errors/errors.js';
import { monotonicNow } from '../common/clock.js';
import { MethodRuns } from './method-health.js';

/** Circuit-breaker settings (opossum underneath). */
export interface BreakerOptions {
  /** Open when at least this share (percent) of the calls in the window failed. */
  readonly errorThresholdPercentage: number;
  /** …and at least this many calls were made in the window. */
  readonly volumeThreshold: number;
  /** Stay open this long, then let exactly one probe through. */
  readonly resetTimeoutMs: number;
  /** The rolling window of the error rate. */
  readonly rollingWindowMs: number;
  /** The probe's own time limit. */
  readonly probeTimeoutMs: number;
}

/** Outlier-ejection settings. */
export interface EjectionOptions {
  /** Eject after this many provider failures in a row. */
  readonly consecutiveFailures: number;
  /** First ejection's length; each repeat doubles it, up to `maxMs`. */
  readonly baseMs: number;
  readonly maxMs: number;
  /** Never eject (or let breakers exclude) more than this percentage of providers at once. */
  readonly maxPercent: number;
}

export const DEFAULT_BREAKER: BreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  resetTimeoutMs: 5000,
  rollingWindowMs: 10_000,
  probeTimeoutMs: 2000,
};
export const DEFAULT_EJECTION: EjectionOptions = { consecutiveFailures: 5, baseMs: 5000, maxMs: 120_000, maxPercent: 50 };

/**
 * How long new calls pass over a provider after it refused one as overloaded: its
 * `retryAfterMs` hint, but at least this much doubled for each refusal in a row, up to
 * {@link REFUSAL_PAUSE_MAX_MS}. A worker that sheds every call at once (a wedged engine, a broken
 * admission check) has nothing in flight and looks the least loaded of all; without the pause
 * least-active and slo sent it 70 % of the calls of a fleet of four, each one refused.
 */
export const REFUSAL_PAUSE_BASE_MS = 25;
/** The longest pause that refusals in a row earn (a provider's own hint may ask for longer). */
export const REFUSAL_PAUSE_MAX_MS = 2000;
/** The longest pause a provider's hint is believed for (the concurrency-limit filter's own bound). */
export const REFUSAL_HINT_MAX_MS = 10_000;

/**
 * Failures that say something about the provider. The caller's own errors (INVALID_ARGUMENT,
 * a cancel), answers about the request (NOT_FOUND, UNIMPLEMENTED…) and deliberate load
 * shedding (RESOURCE_EXHAUSTED) never count against a provider.
 */
export function isProviderFailure(error: unknown): boolean {
  const code = RpcError.from(error).code;
  return (
    code === RpcCode.UNAVAILABLE || code === RpcCode.INTERNAL || code === RpcCode.UNKNOWN || code === RpcCode.DEADLINE_EXCEEDED || code === RpcCode.DATA_LOSS
  );
}

/** Told of health changes, for logs: a breaker changing state, a provider ejected. */
export interface HealthObserver {
  breaker(address: string, state: 'open' | 'half-open' | 'closed'): void;
  ejected(address: string, untilMs: number, times: number): void;
  /** One method ejected at a provider whose other methods may be well (optional). */
  methodEjected?(address: string, method: string, untilMs: number, times: number): void;
}

/** Records of providers that left the registry with bad news, kept at most (see {@link ProviderHealth.retainOnly}). */
export const MAX_DEPARTED_RECORDS = 256;
/** How long a departed provider's last failure is remembered (the longest ejection by default). */
export const DEPARTED_MEMORY_MS = 120_000;

/** Buckets of a breaker's rolling window (as opossum divides its own). */
const WINDOW_BUCKETS = 10;

/**
 * What a health record uses of its circuit breaker, an opossum CircuitBreaker. Declared here so
 * that the published types do not name opossum: its types are a development dependency, and a
 * user's strict project would fail on them (or, under skipLibCheck, read them as `any`).
 */
export interface Breaker {
  readonly closed: boolean;
  readonly opened: boolean;
  readonly halfOpen: boolean;
  readonly pendingClose: boolean;
  fire(run: () => Promise<unknown>): Promise<unknown>;
  open(): void;
  /** Stops its timers for good. */
  shutdown(): void;
}

/**
 * One provider's health: its breaker (opossum, the state machine: open, half-open with one
 * probe, closed), the error-rate window that decides when a closed breaker opens, and the run
 * of failures that ejects. Held by an attempt from its start to its outcome.
 */
export class HealthRecord {
  consecutive = 0;
  ejections = 0;
  ejectedUntil = 0;
  /** Overload refusals in a row, and until when new calls pass over the provider for them. */
  refusals = 0;
  refusedUntil = 0;
  /** When the provider last failed a call (0: never). */
  lastFailureAt = 0;
  /** Calls and provider failures per bucket of the rolling window; `tick` is the newest bucket's. */
  readonly calls = new Uint32Array(WINDOW_BUCKETS);
  readonly failures = new Uint32Array(WINDOW_BUCKETS);
  tick = 0;
  /** Runs of failures per method, made at the first provider failure of a method here. */
  methods: MethodRuns | undefined;

  constructor(
    readonly address: string,
    readonly breaker: Breaker | undefined,
  ) {}

  /** Forgets the window (the breaker closed again: old failures must not reopen it at once). */
  clearWindow(): void {
    this.calls.fill(0);
    this.failures.fill(0);
  }
}

/**
 * What one client knows about each provider's health: a circuit breaker per provider (opens on
 * the error rate over a minimum volume; half-open lets exactly one probe through, with its own
 * timeout) and outlier ejection (so many failures in a row: out for an interval that doubles
 * with each repeat). Selection skips providers that are out, but never more than `maxPercent`
 * of them: past that, those due back soonest are picked again rather than overload the last
 * healthy one.
 *
 * opossum is each breaker's state machine (open, the reset timer, half-open, the probe, close),
 * but a call to a provider whose breaker is closed does not go through it: the error rate is
 * counted here, in a window of plain counters advanced by one timer per client, and the
 * breaker is opened when it crosses the threshold. So the common call costs two counter
 * increments instead of opossum's promises, events and clock reads.
 */
export class ProviderHealth {
  readonly #breaker: BreakerOptions | undefined;
  readonly #ejection: EjectionOptions | undefined;
  readonly #entries = new Map<string, HealthRecord>();
  readonly #observer: HealthObserver | undefined;
  /** The rolling window's clock: advanced every window / WINDOW_BUCKETS by #ticker. */
  #tick = 0;
  readonly #ticker: NodeJS.Timeout | undefined;

  constructor(breaker: BreakerOptions | undefined, ejection: EjectionOptions | undefined, observer?: HealthObserver) {
    this.#breaker = breaker;
    this.#ejection = ejection;
    this.#observer = observer;
    if (breaker !== undefined) {
      this.#ticker = setInterval(() => this.#tick++, Math.max(1, breaker.rollingWindowMs / WINDOW_BUCKETS));
      this.#ticker.unref();
    }
  }

  /**
   * Whether new calls may go to `address` now: not ejected, and its breaker closed — or
   * half-open with its one probe not yet taken. While the probe runs the provider is
   * unavailable, so other calls go elsewhere instead of being refused by the breaker.
   */
  available(address: string, now = monotonicNow(), method?: string): boolean {
    const entry = this.#entries.get(address);
    if (entry === undefined) return true;
    if (entry.ejectedUntil > now) return false;
    if (method !== undefined && entry.methods?.ejected(method, now) === true) return false;
    // opossum: `pendingClose` is true from half-open until `fire()` takes the probe.
    return entry.breaker === undefined || entry.breaker.closed || entry.breaker.pendingClose;
  }

  /** Whether `address` refused a call as overloaded so recently that new calls pass it over. */
  refusing(address: string, now = monotonicNow()): boolean {
    const entry = this.#entries.get(address);
    return entry !== undefined && entry.refusedUntil > now;
  }

  /**
   * The items new calls may go to. Providers whose connection is known `down` (broken, or
   * going away) are left out whenever any other remains; so are providers that refused a call
   * as overloaded within their pause ({@link refusing}). Of the rest, those with an open
   * breaker or ejected are left out too, but never more than `maxPercent` of them: past that,
   * the ones due back soonest are picked again (rather than overload the last healthy ones),
   * and when all are out, all are picked. With `method`, a provider ejected for that method
   * alone counts as out for it.
   */
  filter<T extends { readonly address: string }>(items: readonly T[], down: (address: string) => boolean = () => false, method?: string): readonly T[] {
    const now = monotonicNow();
    let downCount = 0;
    let refusingCount = 0;
    let outCount = 0;
    for (const item of items) {
      if (down(item.address)) {
        downCount++;
        continue;
      }
      if (this.refusing(item.address, now)) refusingCount++;
      if (!this.available(item.address, now, method)) outCount++;
    }
    if (downCount === 0 && refusingCount === 0 && outCount === 0) return items;
    // Counted among the providers not down, so compared with those (all down: none is left out).
    let left: readonly T[] = downCount === 0 || downCount === items.length ? items : items.filter((item) => !down(item.address));
    if (refusingCount > 0 && refusingCount < left.length) {
      left = left.filter((item) => !this.refusing(item.address, now));
      if (outCount > 0) outCount = left.filter((item) => !this.available(item.address, now, method)).length;
    }
    if (outCount === 0 || outCount >= left.length) return left;
    const maxPercent = this.#ejection?.maxPercent ?? 100;
    if ((outCount * 100) / left.length <= maxPercent) return left.filter((item) => this.available(item.address, now, method));
    // More are out than the cap allows: as many as it allows stay out — those due back last —
    // and the rest are tried again. Readmitting all of them instead made the cap a cliff: with
    // three of four failing every call, all four were picked again and 75-88 % of calls failed.
    const allowed = Math.floor((left.length * maxPercent) / 100);
    if (allowed <= 0) return left;
    const out = left.filter((item) => !this.available(item.address, now, method));
    out.sort((a, b) => this.#backAt(b.address, now, method) - this.#backAt(a.address, now, method));
    const kept = new Set(out.slice(0, allowed));
    return left.filter((item) => !kept.has(item));
  }

  /**
   * {@link filter}, and then, past the cap, the providers that are out but picked again get their
   * share of the calls and no more: the call goes to them with the chance of their number among
   * the candidates (one call in two for one of two), and to the others otherwise. Left to the
   * balancer, a provider that fails every call at once frees its place at once and looks the
   * idlest of all: least-active, p2c, slo and consistent-hash's bounded load sent it 86-99.9 % of
   * the calls of four providers with three failing, where round-robin sends it half.
   */
  admit<T extends { readonly address: string }>(
    items: readonly T[],
    down: (address: string) => boolean = () => false,
    method?: string,
    random: () => number = Math.random,
  ): readonly T[] {
    const left = this.filter(items, down, method);
    // The same list back: nothing is out, or all are (then all are picked alike).
    if (left === items) return left;
    const now = monotonicNow();
    let readmitted = 0;
    for (const item of left) if (!this.available(item.address, now, method)) readmitted++;
    if (readmitted === 0 || readmitted === left.length) return left;
    const toReadmitted = random() * left.length < readmitted;
    return left.filter((item) => this.available(item.address, now, method) !== toReadmitted);
  }

  /** When a provider that is out is due back: its (or its method's) ejection's end; an open breaker's, unknown (last). */
  #backAt(address: string, now: number, method?: string): number {
    const entry = this.#entries.get(address);
    if (entry === undefined) return Infinity;
    const until = Math.max(entry.ejectedUntil, method === undefined ? 0 : (entry.methods?.get(method)?.ejectedUntil ?? 0));
    return until <= now ? Infinity : until;
  }

  /** The health record of `address` (made at its first call). */
  record(address: string): HealthRecord {
    let entry = this.#entries.get(address);
    if (entry === undefined) {
      entry = this.#create(address);
      this.#entries.set(address, entry);
    }
    return entry;
  }

  /**
   * Starts one attempt on a provider. While its breaker is closed the attempt goes straight
   * through; open, it is refused with UNAVAILABLE (`neverSent`, `breakerOpen`) without running;
   * half-open, the first attempt is the probe (with its own time limit) and the rest are
   * refused. The caller reports the outcome with {@link succeeded} or {@link failed}.
   * `discard` gets what a probe produced after its time limit had failed it (a stream that
   * opened late, to be cancelled: nobody is waiting for it any more).
   */
  guard<T>(entry: HealthRecord, attempt: () => Promise<T>, discard?: (late: T) => void): Promise<T> {
    const breaker = entry.breaker;
    if (breaker === undefined || breaker.closed) return attempt();
    const probe = breaker.halfOpen && breaker.pendingClose;
    const guarded = probe ? () => withTimeout(attempt(), this.#breaker!.probeTimeoutMs, entry.address, discard) : attempt;
    return (breaker.fire(guarded) as Promise<T>).catch((error: unknown) => {
      if ((error as { code?: unknown }).code === 'EOPENBREAKER') {
        throw new RpcError(RpcCode.UNAVAILABLE, `circuit breaker open for provider ${entry.address}`, { details: { neverSent: true, breakerOpen: true } });
      }
      throw error;
    });
  }

  /** Whether an attempt goes straight through now (no breaker, or it is closed): {@link guard} need not wrap it. */
  passes(entry: HealthRecord): boolean {
    return entry.breaker === undefined || entry.breaker.closed;
  }

  /** Counts a successful attempt (of `method`): in the breaker's window, and it ends a run of failures (the method's too). */
  succeeded(entry: HealthRecord, method?: string): void {
    if (entry.breaker !== undefined) entry.calls[this.#bucket(entry)]!++;
    entry.refusals = 0;
    if (this.#ejection !== undefined) {
      entry.consecutive = 0;
      if (entry.ejections > 0 && monotonicNow() > entry.ejectedUntil + this.#ejection.maxMs) entry.ejections = 0;
      const run = method === undefined ? undefined : entry.methods?.get(method);
      if (run !== undefined) {
        run.consecutive = 0;
        if (run.ejections > 0 && monotonicNow() > run.ejectedUntil + this.#ejection.maxMs) run.ejections = 0;
      }
    }
  }

  /**
   * Counts a failed attempt against its provider: the breaker's window (which may open it) and
   * the run of failures that ejects. Refusals by the breaker itself count for nothing; errors
   * that are not the provider's ({@link isProviderFailure}) count as calls, not failures.
   * With `method`, the failure also counts in that method's own run at the provider, which
   * ejects the method there alone (see {@link MethodRuns}).
   */
  failed(entry: HealthRecord, error: unknown, method?: string): void {
    if (error instanceof RpcError && error.details?.['breakerOpen'] === true) return;
    this.#countRefusal(entry, error);
    const failure = isProviderFailure(error);
    if (failure) entry.lastFailureAt = monotonicNow();
    if (entry.breaker !== undefined) this.#countBreaker(entry, failure);
    const ejection = this.#ejection;
    if (ejection === undefined) return;
    // UNIMPLEMENTED from a provider listed as serving the method (a worker deployed without it)
    // says nothing about its other methods, but it will not serve this one: out for it alone.
    if (method !== undefined && (failure || RpcError.from(error).code === RpcCode.UNIMPLEMENTED)) this.#countMethod(entry, method, ejection);
    if (!failure) return;
    // Failures while the provider is already ejected (calls in flight when it was, or sent to
    // it because every provider is ejected) say nothing new: they must not eject it again and
    // again, doubling its time out and logging a warning per call.
    if (entry.ejectedUntil > monotonicNow()) return;
    entry.consecutive++;
    if (entry.consecutive >= ejection.consecutiveFailures) {
      entry.consecutive = 0;
      entry.ejections++;
      entry.ejectedUntil = monotonicNow() + Math.min(ejection.maxMs, ejection.baseMs * 2 ** (entry.ejections - 1));
      this.#observer?.ejected(entry.address, entry.ejectedUntil, entry.ejections);
    }
  }

  /**
   * A provider failure (or UNIMPLEMENTED) in `method`'s own run at the provider: so many in a row eject the method
   * there, for a time that doubles with each repeat as the provider's does. Failures while it
   * is ejected say nothing new.
   */
  #countMethod(entry: HealthRecord, method: string, ejection: EjectionOptions): void {
    const now = monotonicNow();
    const run = (entry.methods ??= new MethodRuns()).track(method, now);
    if (run === undefined) return;
    run.lastFailureAt = now;
    if (run.ejectedUntil > now) return;
    run.consecutive++;
    if (run.consecutive < ejection.consecutiveFailures) return;
    run.consecutive = 0;
    run.ejections++;
    run.ejectedUntil = now + Math.min(ejection.maxMs, ejection.baseMs * 2 ** (run.ejections - 1));
    this.#observer?.methodEjected?.(entry.address, method, run.ejectedUntil, run.ejections);
  }

  /** Runs one attempt on `address` (of `method`) through its breaker and records the outcome (`discard`: see {@link guard}). */
  run<T>(address: string, attempt: () => Promise<T>, discard?: (late: T) => void, method?: string): Promise<T> {
    const entry = this.record(address);
    return this.guard(entry, attempt, discard).then(
      (value) => {
        this.succeeded(entry, method);
        return value;
      },
      (error: unknown) => {
        this.failed(entry, error, method);
        throw error;
      },
    );
  }

  /** Whether `address` is ejected now, until when, and how many times it was in a row. */
  ejection(address: string, now = monotonicNow()): { ejected: boolean; untilMs: number | undefined; count: number } {
    const entry = this.#entries.get(address);
    if (entry === undefined) return { ejected: false, untilMs: undefined, count: 0 };
    const ejected = entry.ejectedUntil > now;
    return { ejected, untilMs: ejected ? entry.ejectedUntil : undefined, count: entry.ejections };
  }

  /** Breaker states, for tests and metrics. */
  breakerState(address: string): 'closed' | 'open' | 'half-open' | undefined {
    const breaker = this.#entries.get(address)?.breaker;
    if (breaker === undefined) return undefined;
    return breaker.halfOpen ? 'half-open' : breaker.opened ? 'open' : 'closed';
  }

  /**
   * Forgets the providers not in `live` (the addresses every directory lists), stopping their
   * breakers: a registry churning through new addresses must not leave a record and a breaker
   * timer behind for every address ever called. A provider that left in good health comes back
   * afresh; one that left with bad news — ejected, breaker not closed, refusing, failures in a
   * row, or ejected recently enough for the next ejection to double — keeps its record while
   * the news lasts (at most {@link MAX_DEPARTED_RECORDS} such records), so a failing worker
   * whose registration flaps is not forgiven at every return: leaving and rejoining the registry
   * each second, one that failed every call was tried 5 times a second, for good.
   */
  retainOnly(live: ReadonlySet<string>): void {
    const now = monotonicNow();
    let kept = 0;
    for (const [address, entry] of this.#entries) {
      if (live.has(address)) continue;
      if (kept < MAX_DEPARTED_RECORDS && this.#badNews(entry, now)) {
        kept++;
        continue;
      }
      entry.breaker?.shutdown();
      this.#entries.delete(address);
    }
  }

  /**
   * Whether `entry` says anything against its provider that a return must not wipe: a pause
   * still running, or a failure within the last {@link DEPARTED_MEMORY_MS} that left a mark (a
   * run of failures, an ejection whose next one would double, a breaker not closed).
   */
  #badNews(entry: HealthRecord, now: number): boolean {
    if (entry.ejectedUntil > now || entry.refusedUntil > now) return true;
    if (entry.methods?.badNews(now, DEPARTED_MEMORY_MS) === true) return true;
    if (now - entry.lastFailureAt > DEPARTED_MEMORY_MS) return false;
    return entry.consecutive > 0 || entry.ejections > 0 || (entry.breaker !== undefined && !entry.breaker.closed);
  }

  /** Stops every breaker's timers. */
  close(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    for (const entry of this.#entries.values()) entry.breaker?.shutdown();
    this.#entries.clear();
  }

  /**
   * An overload answer from the provider (not this consumer's own limit) pauses new calls to it
   * for its hint, or for a pause that doubles with each refusal in a row: a worker that really
   * is full gets its slot back before the next pick; one that refuses everything gets a call
   * every {@link REFUSAL_PAUSE_MAX_MS}, and its next success ends the run.
   */
  #countRefusal(entry: HealthRecord, error: unknown): void {
    if (!(error instanceof RpcError) || error.code !== RpcCode.RESOURCE_EXHAUSTED || error.details?.['local'] === true) return;
    entry.refusals = Math.min(entry.refusals + 1, 32);
    const grown = Math.min(REFUSAL_PAUSE_MAX_MS, REFUSAL_PAUSE_BASE_MS * 2 ** (entry.refusals - 1));
    const hint = error.retryAfterMs;
    const hinted = typeof hint === 'number' && hint > 0 ? Math.min(REFUSAL_HINT_MAX_MS, hint) : 0;
    entry.refusedUntil = Math.max(entry.refusedUntil, monotonicNow() + Math.max(grown, hinted));
  }

  /** The window bucket counting now, after clearing the buckets the clock has moved past. */
  #bucket(entry: HealthRecord): number {
    const tick = this.#tick;
    if (entry.tick !== tick) {
      const passed = Math.min(WINDOW_BUCKETS, tick - entry.tick);
      for (let i = 1; i <= passed; i++) {
        entry.calls[(entry.tick + i) % WINDOW_BUCKETS] = 0;
        entry.failures[(entry.tick + i) % WINDOW_BUCKETS] = 0;
      }
      entry.tick = tick;
    }
    return tick % WINDOW_BUCKETS;
  }

  /** Counts a settled call in the window; a failure may open the (closed) breaker. */
  #countBreaker(entry: HealthRecord, failure: boolean): void {
    const bucket = this.#bucket(entry);
    entry.calls[bucket]!++;
    if (!failure) return;
    entry.failures[bucket]!++;
    const breaker = entry.breaker!;
    // An open or half-open breaker is opossum's to move; failures of calls sent before it
    // opened say nothing new.
    if (!breaker.closed) return;
    const options = this.#breaker!;
    let calls = 0;
    let failures = 0;
    for (let i = 0; i < WINDOW_BUCKETS; i++) {
      calls += entry.calls[i]!;
      failures += entry.failures[i]!;
    }
    if (calls >= options.volumeThreshold && (failures * 100) / calls > options.errorThresholdPercentage) breaker.open();
  }

  #create(address: string): HealthRecord {
    const options = this.#breaker;
    const breaker =
      options === undefined
        ? undefined
        : new CircuitBreaker((run: () => Promise<unknown>) => run(), {
            timeout: false,
            errorThresholdPercentage: options.errorThresholdPercentage,
            volumeThreshold: options.volumeThreshold,
            resetTimeout: options.resetTimeoutMs,
            rollingCountTimeout: options.rollingWindowMs,
            rollingCountBuckets: WINDOW_BUCKETS,
            // true = "not a failure": only the provider's own failures fail the probe.
            errorFilter: (error: unknown) => !isProviderFailure(error),
          });
    const entry = new HealthRecord(address, breaker);
    entry.tick = this.#tick;
    if (breaker !== undefined) {
      // Closed again after a good probe: the failures that opened it are history.
      breaker.on('close', () => entry.clearWindow());
      const observer = this.#observer;
      if (observer !== undefined) {
        breaker.on('open', () => observer.breaker(address, 'open'));
        breaker.on('halfOpen', () => observer.breaker(address, 'half-open'));
        breaker.on('close', () => observer.breaker(address, 'closed'));
      }
    }
    return entry;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, address: string, discard?: (late: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  if (discard !== undefined) {
    promise.then(
      (late) => {
        if (timedOut) discard(late);
      },
      () => {},
    );
  }
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new RpcError(RpcCode.UNAVAILABLE, `probe of provider ${address} timed out after ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
