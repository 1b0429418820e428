import { MAX_TIMER_MS } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { Invocation } from '../call/invocation.js';
import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';
import { monotonicNow } from '../common/clock.js';

/*
 * The errors a consumer-side connection fails a call with on its own (the provider never
 * answered), shared by the transports so that a caller sees the same codes and words whichever
 * wire the call took.
 */

/** An UNAVAILABLE error for a request that provably never left this process. */
export function neverSent(message: string, cause?: unknown): RpcError {
  return new RpcError(RpcCode.UNAVAILABLE, message, { cause, details: { neverSent: true } });
}

/**
 * `error` marked `maybeExecuted`: the connection was lost (or the deadline passed) while the
 * request was in flight, so its handler may have run (or may still be running) on the provider;
 * callOutcome reports it as `maybe-executed`. An error already known never sent is returned as
 * it is.
 */
export function lostInFlight(error: RpcError): RpcError {
  if (error.details?.['neverSent'] === true || error.details?.['maybeExecuted'] === true) return error;
  return new RpcError(error.code, error.rawMessage, {
    cause: error.cause,
    details: { ...error.details, maybeExecuted: true },
    retryable: error.retryable,
    ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
  });
}

/**
 * The error of a call whose request was sent, as its caller must read it: a DEADLINE_EXCEEDED
 * (this side's timer, or the provider's answer) is marked `maybeExecuted`, since the handler may
 * have run, wholly or in part, before the time ran out (gRPC says the same of the code). Any
 * other error is returned as it is. A deadline that passes before the request is sent
 * ({@link raceCallLimits}) is not such an error.
 */
export function sentCallError(error: RpcError): RpcError {
  return error.code === RpcCode.DEADLINE_EXCEEDED ? lostInFlight(error) : error;
}

export function deadlineError(target: { service: string; method: string }): RpcError {
  return new RpcError(RpcCode.DEADLINE_EXCEEDED, `${target.service}.${target.method} did not complete before its deadline`);
}

export function cancelledError(invocation: Invocation, signal: AbortSignal): RpcError {
  return new RpcError(RpcCode.CANCELLED, `${invocation.service}.${invocation.method} was cancelled by the caller`, { cause: signal.reason });
}

/**
 * Races a connect (or any wait before sending) against the call's own deadline and abort signal;
 * `waiting` says what the call waited for, in the deadline's message.
 */
export function raceCallLimits(connecting: Promise<void>, invocation: Invocation, address: string, waiting = `connecting to ${address}`): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const signal = invocation.signal;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => finish(cancelledError(invocation, signal!));
    const finish = (error?: RpcError): void => {
      clearTimeout(timer);
      unlistenAbort(signal, onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    if (signal?.aborted) return finish(cancelledError(invocation, signal));
    listenAbort(signal, onAbort);
    if (invocation.deadline !== undefined) {
      timer = setTimeout(
        () => finish(new RpcError(RpcCode.DEADLINE_EXCEEDED, `${invocation.service}.${invocation.method}: deadline passed while ${waiting}`)),
        Math.min(Math.max(0, invocation.deadline - monotonicNow()), MAX_TIMER_MS),
      );
    }
    connecting.then(
      () => finish(),
      (error: unknown) => finish(RpcError.from(error, RpcCode.UNAVAILABLE)),
    );
  });
}
