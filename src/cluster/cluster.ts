import type { ServiceInstance } from '../registry/registry.js';
import type { Invocation } from '../transport/transport.js';
import { isProviderFailure } from './provider-health.js';
import type { RetryBudget } from './retry-budget.js';

/**
 * One call handed to a cluster strategy: the candidate providers and the two moves a strategy
 * can make — pick a provider (through the load balancer) and send the call to it.
 */
export interface ClusterCall {
  readonly invocation: Invocation;
  /** Providers currently eligible for this call; never empty. */
  readonly providers: readonly ServiceInstance[];
  /** Whether the method is declared idempotent by its provider (false when unknown). */
  readonly idempotent: boolean;
  /**
   * A server-streaming call: `send` resolves with the stream once the request is sent. A
   * strategy may retry a stream only while `send` rejects; once it resolved, chunks may have
   * reached the caller, and a stream is never retried after its first chunk.
   */
  readonly stream: boolean;
  /** The client's retry budget: a retry must `withdraw()` a token first. */
  readonly budget: RetryBudget;
  /** Retries allowed for this call by its reference (`retries` option), if it set one. */
  readonly retries: number | undefined;
  /**
   * Picks a provider with the load balancer, skipping `excluded` and providers whose breaker
   * is open or that are ejected; undefined if none is left.
   */
  select(excluded?: ReadonlySet<ServiceInstance>): ServiceInstance | undefined;
  /**
   * Sends the call to `provider` (through its circuit breaker) and resolves with its result
   * (a stream: the open stream). `signal` cancels this attempt only (hedging's losers).
   */
  send(provider: ServiceInstance, options?: { signal?: AbortSignal }): Promise<unknown>;
}

/**
 * One attempt on the balancer's pick, counted as a call by the retry budget: all of failfast,
 * and the first step of failsafe and failback.
 */
export function singleAttempt(call: ClusterCall): Promise<unknown> {
  call.budget.deposit();
  return call.send(call.select()!);
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
  return call.idempotent && failure.retryable === true && failure.code !== 4;
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
  return value !== null && typeof value === 'object' && typeof (value as ClusterStrategy).invoke === 'function' && typeof (value as ClusterStrategy).name === 'string';
}
