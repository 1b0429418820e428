import { checkInt, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { mayRetryTransparently, safeToRetry, singleAttempt, type ClusterCall, type ClusterCandidate, type ClusterStrategy } from './cluster.js';
import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';
import { monotonicNow } from '../common/clock.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'forking';

/**
 * Hedged requests (Dubbo's forking, with a delay as in "The Tail at Scale"): the call goes to
 * one provider; if no answer came within `hedgeDelayMs`, another attempt goes to another
 * provider, up to `forks` attempts in all; the first success wins and the others are
 * cancelled through the cancellation path (their providers' handlers see ctx.signal fire).
 * `hedgeDelayMs: 0` starts them all at once.
 *
 * A hedge is only launched when a retry would be safe: on a timer only for idempotent methods
 * (anything else could do the work twice), and after a failure only when `safeToRetry` says so
 * (a never-sent attempt of any method). Hedges and retries that may reach a provider must be
 * allowed by the retry throttle (gRFC A6 throttles hedges like retries); retries of attempts
 * that never reached one are free. The call settles by its deadline whatever its attempts do:
 * with the first success, with the last failure once nothing more may be launched, or with
 * DEADLINE_EXCEEDED. Streams are not hedged. Options: `{ forks, hedgeDelayMs }`.
 */
export const createForkingCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('forking cluster options', options, ['forks', 'hedgeDelayMs']);
  const forks = checkInt('forking forks', options['forks'], 1, 16, 2);
  const hedgeDelayMs = checkInt('forking hedgeDelayMs', options['hedgeDelayMs'], 0, 600_000, 50);
  return {
    name: TYPE_NAME,
    invoke(call) {
      if (call.stream) return singleAttempt(call);
      return new Promise((resolve, reject) => new Hedge(call, forks, hedgeDelayMs, resolve, reject).start());
    },
  };
};

/** The state of one hedged call; every path ends in exactly one `#settle`. */
class Hedge {
  readonly #tried = new Set<ClusterCandidate>();
  readonly #inFlight = new Set<AbortController>();
  #launched = 0;
  #settled = false;
  #hedgeTimer: NodeJS.Timeout | undefined;
  readonly #deadlineTimer: NodeJS.Timeout | undefined;
  readonly #onAbort = (): void =>
    this.#fail(new RpcError(RpcCode.CANCELLED, `${this.call.invocation.service}.${this.call.invocation.method} was cancelled by the caller`));

  constructor(
    private readonly call: ClusterCall,
    private readonly forks: number,
    private readonly hedgeDelayMs: number,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    const { deadline, signal, service, method } = call.invocation;
    // The transport ends each attempt at the deadline; this guard makes the call's own end not
    // depend on that (an attempt that never settles, a hedge timer racing the deadline).
    if (deadline !== undefined) {
      this.#deadlineTimer = setTimeout(
        () => this.#fail(new RpcError(RpcCode.DEADLINE_EXCEEDED, `${service}.${method}: no hedged attempt answered before the deadline`)),
        Math.max(0, deadline - monotonicNow()),
      );
    }
    listenAbort(signal, this.#onAbort);
  }

  /** Starts the first attempt. */
  start(): void {
    if (!this.launch(false))
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, `no provider of ${this.call.invocation.service} to try`, { details: { neverSent: true } }));
  }

  /**
   * Starts one more attempt if allowed: under `forks`, a provider not tried yet, and (when
   * `paid`) the retry throttle agrees. Returns whether an attempt started.
   */
  launch(paid: boolean): boolean {
    if (this.#settled || this.#launched >= this.forks) return false;
    const provider = this.call.select(this.#tried);
    if (provider === undefined || (paid && !this.call.budget.allowRetry())) return false;
    this.#tried.add(provider);
    this.#launched++;
    const controller = new AbortController();
    this.#inFlight.add(controller);
    this.call.send(provider, { signal: controller.signal }).then(
      (value) => {
        this.#inFlight.delete(controller);
        this.#settle(() => this.resolve(value));
      },
      (error: unknown) => {
        this.#inFlight.delete(controller);
        this.#failed(error);
      },
    );
    clearTimeout(this.#hedgeTimer);
    if (this.call.idempotent && this.#launched < this.forks) this.#hedgeTimer = setTimeout(() => this.launch(true), this.hedgeDelayMs);
    return true;
  }

  #failed(error: unknown): void {
    if (this.#settled) return;
    // Free when the attempt never reached a provider; paid when it may have (idempotent only).
    const again = safeToRetry(error, this.call) && this.launch(!mayRetryTransparently(error, this.call, this.#tried));
    // Nothing running and nothing started: waiting would only wait for the deadline.
    if (!again && this.#inFlight.size === 0) this.#fail(error);
  }

  #fail(error: unknown): void {
    this.#settle(() => this.reject(error));
  }

  #settle(report: () => void): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#hedgeTimer);
    clearTimeout(this.#deadlineTimer);
    unlistenAbort(this.call.invocation.signal, this.#onAbort);
    for (const attempt of this.#inFlight) attempt.abort(new RpcError(RpcCode.CANCELLED, 'another hedged attempt answered first, or the call ended'));
    this.#inFlight.clear();
    report();
  }
}
