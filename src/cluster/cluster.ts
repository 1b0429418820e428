import { RpcCode, RpcError } from '../errors/errors.js';
import type { ServiceInstance } from '../registry/registry.js';
import type { Invocation } from '../call/invocation.js';
import { isProviderFailure } from './provider-health.js';
import type { RetryBudget } from './retry-budget.js';
import { monotonicNow } from '../common/clock.js';

/**
 * A provider as a cluster strategy handles it: its record and address, and whatever the
 * consumer keeps about it (its statistics, for the send). The strategy passes the same object
 * back to {@link ClusterCall.send}, so nothing is looked up again between the pick and the send.
 */
export interface ClusterCandidate {
  readonly instance: ServiceInstance;
  /** `host:port`. */
  readonly address: string;
}

/**
 * One call handed to a cluster strategy: the candidate providers and the two moves a strategy
 * can make — pick a provider (through the load balancer) and send the call to it. The flow is
 * one way: the strategy calls `select` and `send` and nothing of the client's.
 */
export interface ClusterCall {
  readonly invocation: Invocation;
  /** Providers currently eligible for this call; never empty. */
  readonly providers: readonly ClusterCandidate[];
  /** Whether the method is declared idempotent by its provider (false when unknown). */
  readonly idempotent: boolean;
  /**
   * A server-streaming call: `send` resolves with the stream once the request is sent. A
   * strategy may retry a stream only while `send` rejects; once it resolved, chunks may have
   * reached the caller, and a stream is never retried after its first chunk.
   */
  readonly stream: boolean;
  /**
   * The client's retry throttle: every attempt's outcome is recorded in it by `send` ({@link recordAttempt}),
   * and a retry or hedge that may have reached a provider must be allowed by `allowRetry()`.
   */
  readonly budget: RetryBudget;
  /** Retries allowed for this call by its reference (`retries` option), if it set one. */
  readonly retries: number | undefined;
  /**
   * Picks a provider with the load balancer, skipping `excluded` and providers whose breaker
   * is open or that are ejected; undefined if none is left.
   */
  select(excluded?: ReadonlySet<ClusterCandidate>): ClusterCandidate | undefined;
  /**
   * Sends the call to `provider` — one of `providers`, or what `select` returned — (through its
   * circuit breaker) and resolves with its result
   * (a stream: the open stream). `signal` cancels this attempt only (hedging's losers). Every
   * implementation records the attempt's outcome in `budget` ({@link recordAttempt}) as it
   * settles, so strategies send with this alone.
   */
  send(provider: ClusterCandidate, options?: { signal?: AbortSignal }): Promise<unknown>;
  /**
   * Whether `provider` refused a call as overloaded so recently that new calls pass it over
   * (optional; a call without it counts every provider as possibly refusing). A strategy that
   * retries an overload refusal elsewhere waits for the refusing provider's `retryAfterMs` only
   * when every provider left is refusing too: the hint says when that provider has room.
   */
  refusing?(provider: ClusterCandidate): boolean;
}

/**
 * Transparent retries a call may make on top of its strategy's own: retries of attempts that
 * provably never reached a provider (see {@link neverReached}). They cost no retry budget, so
 * a dead provider does not fail a fresh client's first calls, but each call gets only a few,
 * each on a provider it has not tried, so a fleet that refuses everything is not spun on.
 */
export const TRANSPARENT_RETRIES = 2;

/**
 * Whether a failed attempt provably never reached a provider's handler and cost the fleet
 * nothing: connection refused, closed or draining before the request's first byte, GOAWAY
 * before its id, this consumer's own per-provider limit. Such attempts cost no retry budget
 * and are retried for free. Two never-sent refusals are not among them: an overload answer
 * from a provider (RESOURCE_EXHAUSTED; retrying it is what the budget throttles) and an open
 * breaker's (it stands for the failure it predicts, and a breaker is only tried while too many
 * are open to skip them all — spinning through the others would find them open too).
 */
export function neverReached(error: unknown): boolean {
  const details = (error as { details?: Record<string, unknown> } | undefined)?.details;
  if (details?.['neverSent'] !== true || details['breakerOpen'] === true) return false;
  return (error as { code?: unknown }).code !== RpcCode.RESOURCE_EXHAUSTED || details['local'] === true;
}

/**
 * Records one settled attempt in the retry budget (gRFC A6): a success (`failed` false) earns a
 * fraction of a token, a provider-side failure or an overload answer costs one; the caller's own
 * errors, cancelled losers and attempts that never reached a provider cost nothing. Called by
 * every {@link ClusterCall.send} from the handlers it already has on the attempt, so recording
 * costs no promise of its own.
 */
export function recordAttempt(budget: RetryBudget, failed: boolean, error?: unknown): void {
  if (!failed) budget.recordSuccess();
  else if (!neverReached(error) && (isProviderFailure(error) || (error as { code?: unknown }).code === RpcCode.RESOURCE_EXHAUSTED)) budget.recordFailure();
}

/**
 * One attempt on a provider not in `tried` (added to it), or a never-sent rejection when none
 * is left.
 */
export function attemptOnUntried(call: ClusterCall, tried: Set<ClusterCandidate>, options?: { signal?: AbortSignal }): Promise<unknown> {
  const provider = call.select(tried);
  if (provider === undefined) return Promise.reject(noneLeft(call));
  tried.add(provider);
  return call.send(provider, options);
}

/** The refusal when every provider was tried (or none is eligible): never sent. */
export function noneLeft(call: ClusterCall): RpcError {
  return new RpcError(RpcCode.UNAVAILABLE, `no provider of ${call.invocation.service} left to try`, { details: { neverSent: true } });
}

/**
 * One attempt on the balancer's pick, plus the transparent retries of attempts that never
 * reached a provider: all of failfast, and the first step of failsafe and failback.
 */
export function singleAttempt(call: ClusterCall): Promise<unknown> {
  const tried = new Set<ClusterCandidate>();
  const attempt = (transparentLeft: number): Promise<unknown> =>
    attemptOnUntried(call, tried).catch((error: unknown) => {
      if (transparentLeft > 0 && mayRetryTransparently(error, call, tried)) return attempt(transparentLeft - 1);
      throw error;
    });
  return attempt(TRANSPARENT_RETRIES);
}

/** Whether `error` may be retried transparently now: it never reached a provider, another remains, time remains. */
export function mayRetryTransparently(error: unknown, call: ClusterCall, tried: ReadonlySet<ClusterCandidate>): boolean {
  if (!neverReached(error) || call.invocation.signal?.aborted) return false;
  if (tried.size >= call.providers.length) return false;
  const deadline = call.invocation.deadline;
  return deadline === undefined || monotonicNow() < deadline;
}

/**
 * One attempt whose provider-side failure does not fail the call: `onFailure` sees the error
 * and the call resolves with undefined (failsafe, failback). Caller errors still fail it, and
 * streams are passed through untouched.
 */
export function attemptAbsorbingFailure(call: ClusterCall, onFailure: (error: unknown) => void): Promise<unknown> {
  const attempt = singleAttempt(call);
  if (call.stream) return attempt;
  return attempt.catch((error: unknown) => {
    if (!isProviderFailure(error)) throw error;
    onFailure(error);
    return undefined;
  });
}

/**
 * Whether a failed attempt may be tried again elsewhere: always when the request provably
 * never reached a handler (`details.neverSent`: connect refused, GOAWAY, draining, breaker
 * open, refused by a concurrency limit); otherwise only for idempotent methods and retryable
 * codes; never after the caller cancelled.
 */
export function safeToRetry(error: unknown, call: ClusterCall): boolean {
  const failure = error as { code?: unknown; retryable?: unknown; details?: Record<string, unknown> };
  if (call.invocation.signal?.aborted) return false;
  if (failure.details?.['neverSent'] === true) return true;
  return call.idempotent && failure.retryable === true && failure.code !== RpcCode.DEADLINE_EXCEEDED;
}

/**
 * How a call uses the providers (Dubbo's Cluster): one attempt, retries elsewhere, hedging,
 * broadcast… Contract: resolve with one result or reject with an RpcError; never send a
 * non-idempotent call twice unless it provably never reached a handler.
 */
export interface ClusterStrategy {
  readonly name: string;
  invoke(call: ClusterCall): Promise<unknown>;
}

/** Tells a ClusterStrategy instance from a spec. */
export function isClusterStrategy(value: unknown): value is ClusterStrategy {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as ClusterStrategy).invoke === 'function' &&
    typeof (value as ClusterStrategy).name === 'string'
  );
}
