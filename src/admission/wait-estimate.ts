/** Shortest and longest Retry-After the queue suggests, ms. */
const MIN_RETRY_MS = 50;
const MAX_RETRY_MS = 60_000;

/**
 * Ms until `ahead` calls have left the queue at `drainPerMs` calls per ms, plus one more for
 * the caller's own slot; undefined before a drain rate has been measured (then nothing is
 * refused for its deadline: the queue does not guess).
 */
export function estimateWaitMs(drainPerMs: number | undefined, ahead: number): number | undefined {
  if (drainPerMs === undefined || drainPerMs <= 0) return undefined;
  return (ahead + 1) / drainPerMs;
}

/**
 * The Retry-After for a refused call: the time the calls now ahead of it need to drain, so a
 * retry meets a shorter queue; `fallback` before a rate is known; clamped to 50 ms … 60 s.
 */
export function retryAfterMs(drainPerMs: number | undefined, ahead: number, fallback: number): number {
  const wait = estimateWaitMs(drainPerMs, ahead);
  return Math.round(Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, wait ?? fallback)));
}
