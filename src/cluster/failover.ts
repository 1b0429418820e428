import pRetry from 'p-retry';
import { checkInt, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';
import {
  attemptOnUntried,
  mayRetryTransparently,
  noneLeft,
  safeToRetry,
  TRANSPARENT_RETRIES,
  type ClusterCall,
  type ClusterCandidate,
  type ClusterStrategy,
} from './cluster.js';
import { monotonicNow } from '../common/clock.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'failover';

/**
 * Retry on another provider (Dubbo's failover, the default), with safer rules than Dubbo's:
 *
 * - only when safe (cluster.ts `safeToRetry`): a request that never reached a handler always,
 *   otherwise only idempotent methods and retryable codes — a non-idempotent call is never
 *   run twice;
 * - at most `retries` retries (2 by default; the reference's `retries` option overrides), each
 *   on a provider not tried yet, each allowed by the client's retry throttle (gRFC A6) — plus
 *   a few free, immediate retries of attempts that never reached a provider (cluster.ts
 *   `TRANSPARENT_RETRIES`), which even `retries: 0` makes;
 * - after a delay with full jitter (random between 0 and min(maxMs, baseMs x 2^n)), or the
 *   failed provider's retry-after hint if longer when every provider left is refusing calls as
 *   overloaded too (ClusterCall.refusing), never past the call's deadline;
 * - through p-retry, so the attempt loop, the abort signal and the bookkeeping are a
 *   well-kept library's.
 *
 * Options: `{ retries, baseMs, maxMs }`.
 */
export const createFailoverCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('failover cluster options', options, ['retries', 'baseMs', 'maxMs']);
  const defaultRetries = checkInt('failover retries', options['retries'], 0, 10, 2);
  const baseMs = checkInt('failover baseMs', options['baseMs'], 0, 60_000, 10);
  const maxMs = checkInt('failover maxMs', options['maxMs'], 0, 600_000, 1000);
  return {
    name: TYPE_NAME,
    invoke(call) {
      return failover(call, call.retries ?? defaultRetries, baseMs, maxMs);
    },
  };
};

/** The failover loop, shared with strategies that start as failover (failback, failsafe). */
export function failover(call: ClusterCall, retries: number, baseMs: number, maxMs: number): Promise<unknown> {
  // The first attempt runs outside p-retry and without the set of providers tried: the common
  // case (it succeeds) pays nothing for the retry machinery; a failure enters the same loop as
  // a retry would.
  const first = call.select();
  if (first === undefined) return Promise.reject(noneLeft(call));
  return call.send(first).catch((error: unknown) => {
    if (!safeToRetry(error, call)) throw error;
    return retryAfterFirst(call, new Set([first]), error, retries, baseMs, maxMs);
  });
}

function retryAfterFirst(
  call: ClusterCall,
  tried: Set<ClusterCandidate>,
  firstError: unknown,
  retries: number,
  baseMs: number,
  maxMs: number,
): Promise<unknown> {
  let pending: unknown = firstError;
  let last: unknown = firstError;
  let overloaded = 0;
  let transparent = 0;
  let paid = 0;
  const attempt = (): Promise<unknown> => {
    // p-retry's first "attempt" replays the first failure so that its rules decide the retry.
    if (pending !== undefined) {
      const error = pending;
      pending = undefined;
      return Promise.reject(error);
    }
    return attemptOnUntried(call, tried).catch((error: unknown) => {
      last = error;
      throw error;
    });
  };
  // When the caller aborts, p-retry rejects with the signal's reason; the caller should see the
  // last attempt's RpcError (CANCELLED) instead.
  return pRetry(attempt, {
    retries: retries + TRANSPARENT_RETRIES,
    minTimeout: 0,
    factor: 1,
    // p-retry refuses to retry TypeErrors, which an RpcError is not; and it rethrows AbortError's cause.
    shouldRetry: async ({ error }) => {
      // An attempt that never reached a provider is retried at once and for free, a few times a
      // call; past that, such a retry is paid for like any other.
      if (transparent < TRANSPARENT_RETRIES && mayRetryTransparently(error, call, tried)) {
        transparent++;
        return true;
      }
      if (!safeToRetry(error, call) || ++paid > retries) return false;
      // An overloaded fleet must not be hit harder: a RESOURCE_EXHAUSTED answer is retried on
      // another provider at most once per call.
      if ((error as RpcError).code === RpcCode.RESOURCE_EXHAUSTED && ++overloaded > 1) return false;
      // Another provider must remain (without selecting one: a selection is an attempt).
      if (tried.size >= call.providers.length) return false;
      // A provider's hint says when *it* will have room. The retry goes elsewhere: it waits
      // for the hint only when every provider left refused calls as overloaded too (the fleet
      // is full, and must not be hit harder). Waiting for it regardless had held a call refused
      // by one full worker for up to the hint (2 s, measured) while idle workers had room.
      const hint = roomElsewhere(call, tried) ? 0 : ((error as RpcError).retryAfterMs ?? 0);
      const delay = Math.max(hint, Math.random() * Math.min(maxMs, baseMs * 2 ** (paid - 1)));
      const deadline = call.invocation.deadline;
      if (deadline !== undefined && monotonicNow() + delay >= deadline) return false;
      if (!call.budget.allowRetry()) return false;
      await sleep(delay, call.invocation.signal);
      return true;
    },
    ...(call.invocation.signal === undefined ? {} : { signal: call.invocation.signal }),
  }).catch((error: unknown) => {
    throw error instanceof RpcError ? error : last;
  });
}

/** Whether a provider not tried yet is not refusing calls as overloaded (see ClusterCall.refusing). */
function roomElsewhere(call: ClusterCall, tried: ReadonlySet<ClusterCandidate>): boolean {
  if (call.refusing === undefined) return false;
  for (const provider of call.providers) if (!tried.has(provider) && !call.refusing(provider)) return true;
  return false;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      unlistenAbort(signal, done);
      resolve();
    }
    listenAbort(signal, done);
  });
}
