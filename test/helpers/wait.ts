/**
 * Checks `check` every `intervalMs` until it returns (or resolves to) true, and fails after
 * `timeoutMs` with an error naming `what`. `what` may be a function, called only on timeout, so
 * the message can show the last state the checks saw. A check that throws fails the wait at
 * once: a check for "not yet" returns false. A check that has started always gets its answer
 * (a slow one, such as a child process, is not cut off at the deadline), so one that never
 * answers is left to the test's own timeout.
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 5000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, deadline - Date.now())));
  }
}

/** Resolves with the rejection of `promise`; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: number; details?: Record<string, unknown> }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: number };
  }
  throw new Error('expected the call to fail, but it succeeded');
}
