/**
 * The process's clock for intervals, ages and deadlines.
 *
 * `Date.now()` is the wall clock: NTP corrects it by minutes in one step, a VM resumed from
 * suspend jumps it forward, an operator sets it back. Every interval measured on it moves by
 * that step: an ejection meant for 30 s lasts an hour, a deadline fires at once, a load report
 * looks an hour old. `monotonicNow()` reads the monotonic clock instead (`performance.now()`,
 * which no step moves), offset by the wall time at which the process started, so its values are
 * on the familiar epoch-ms scale (and equal to `Date.now()` until the first step) while their
 * differences stay true. A reading costs about what `Date.now()` costs.
 *
 * Use it for every "how long ago" and "until when" inside the process. Use `Date.now()` only
 * for time meant as wall time: shown to people, logged, written into a record or a header that
 * says "when", or handed to a library that compares it with `Date.now()` itself (grpc-js call
 * deadlines) — and convert with {@link toWallTime} at that edge.
 */

const ORIGIN = Math.floor(performance.timeOrigin);

/**
 * Milliseconds (an integer) on the monotonic clock: never goes back, never jumps with the wall
 * clock; equal to `Date.now()` when the process started.
 */
export function monotonicNow(): number {
  return ORIGIN + Math.floor(performance.now());
}

/**
 * The wall time (`Date.now()` scale) of `monotonic`, a {@link monotonicNow} reading or deadline,
 * for a library or a person who reads wall time: the same distance from now on both clocks.
 */
export function toWallTime(monotonic: number, now: number = monotonicNow()): number {
  return Date.now() + (monotonic - now);
}

/**
 * The {@link monotonicNow} time of `wall`, a `Date.now()`-scale time (a library's deadline, a
 * file's mtime on this host): the same distance from now on both clocks.
 */
export function fromWallTime(wall: number, now: number = monotonicNow()): number {
  return now + (wall - Date.now());
}
