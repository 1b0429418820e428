/*
 * Callbacks an application hands the framework to be told things (`onRoute`, `onAttempt`,
 * `onStreamBreak`, a balancer's `observe`, a provider's `load()`): their bugs are theirs. What
 * one throws is dropped where it is called; what one returns is not awaited, so an async
 * callback's rejection would otherwise end the process as an unhandled rejection.
 */

/** Marks `value`, what a callback returned, as handled when it is a promise or a thenable. */
export function settleQuietly(value: unknown): void {
  if (value instanceof Promise) {
    value.catch(ignore);
    return;
  }
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  try {
    const then = (value as { then?: unknown }).then;
    if (typeof then === 'function') (then as (ok: unknown, failed: unknown) => unknown).call(value, ignore, ignore);
  } catch {
    // A thenable whose `then` throws has nothing left to handle.
  }
}

/**
 * `hook` as an observer that neither throws nor leaves a rejection unhandled; undefined stays
 * undefined, so "no hook" still costs nothing. Made once per client, not per call.
 */
export function quietObserver<E>(hook: ((event: E) => void) | undefined): ((event: E) => void) | undefined {
  if (hook === undefined) return undefined;
  return (event) => {
    try {
      settleQuietly(hook(event));
    } catch {
      // An observer's bug must not fail the call it observes.
    }
  };
}

function ignore(): void {}
