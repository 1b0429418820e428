import type { MethodKey } from './method-wait.js';
import type { LiveProviderStats } from './provider-stats.js';

/** A provider quiet for less than this is never taken for hung, however fast the fleet. */
export const STALL_FLOOR_MS = 1000;
/** …nor for less than this many times the slowest typical call of the method among the candidates. */
export const STALL_FACTOR = 4;

/** Not passed over. */
const WELL = 0;
/** Calls of the method wait past the floor, and no candidate has answered it yet: maybe slow. */
const PAST_FLOOR = 1;
/** Calls wait past a limit some candidate's answers have taught. */
const HUNG = 2;

/**
 * The candidates for a call of `method` without the ones that look hung, judged method by
 * method, where a method's limit is the longer of {@link STALL_FLOOR_MS} and
 * {@link STALL_FACTOR} times the slowest candidate's typical wait for the first answer of a
 * successful call of that method (MethodWait.typicalMs: a unary call's time, a stream's time to
 * its first chunk):
 *
 * - calls of `method` waiting there for their first answer, and no answer to a call of
 *   `method` from it, for longer than `method`'s limit: its handlers of this method hang,
 *   whatever its other methods do. While no candidate has answered `method` yet, its limit is
 *   the floor, and a provider passed over on the floor alone is kept before one passed over
 *   on what answers have taught (a fresh consumer's first calls of a slow method all wait
 *   past the floor; a hung provider among them must not be taken back with them);
 * - or calls of some method waiting there past that method's limit, a limit some candidate's
 *   answers have taught, and nothing at all heard from it in that time: the whole process
 *   hangs. A call of it that waited so and then gave up (its deadline) counts until the
 *   provider answers anything.
 *
 * A worker whose handlers never return keeps its connection, heartbeats and load reports alive,
 * so nothing else finds it before its calls' deadlines: round-robin and random went on sending
 * it their share of the calls, each one waiting out its deadline. Judged by one typical time
 * for all its methods, a worker running a slow method (a generation of seconds) would look hung
 * the moment it had answered nothing for a second, beside one that had just answered a fast
 * call, and every call of every method would go to that one. Such a provider is passed over while
 * another remains, like one whose connection is down; the first answer it sends ends that. Its
 * calls already in flight run to their deadlines, and their failures eject it as any others
 * would. A stream delivering chunks is not waiting, however long it runs.
 *
 * Cheap when nothing waits long: one pass over the candidates, no allocation; a new list only
 * when some of them are passed over.
 */
export function withoutStalled<T extends { readonly stats: LiveProviderStats }>(views: readonly T[], method: MethodKey, now: number): readonly T[] {
  if (views.length < 2) return views;
  let floorOnly = 0;
  let hung = 0;
  for (const view of views) {
    const verdict = verdictOf(view.stats, method, views, now);
    if (verdict === HUNG) hung++;
    else if (verdict === PAST_FLOOR) floorOnly++;
  }
  // Passed over on what answers have taught first, on the floor alone only while others remain.
  const drop = hung + floorOnly < views.length ? PAST_FLOOR : hung < views.length ? HUNG : undefined;
  if (drop === undefined || hung + floorOnly === 0) return views;
  return views.filter((view) => verdictOf(view.stats, method, views, now) < drop);
}

/** How `stats`' provider looks to a call of `method` among `views` (see {@link withoutStalled}). */
function verdictOf(stats: LiveProviderStats, method: MethodKey, views: readonly { readonly stats: LiveProviderStats }[], now: number): number {
  // No call there has waited past the floor: the common case, settled without a lookup.
  if (stats.waitingMs(now) <= STALL_FLOOR_MS) return WELL;
  let verdict = WELL;
  const own = stats.methodWait(method);
  if (own !== undefined && own.awaiting > 0 && now - own.since > STALL_FLOOR_MS) {
    const limit = limitOf(method, views, now, 0);
    if (limit === 0) verdict = PAST_FLOOR;
    else if (now - own.since > limit) return HUNG;
  }
  if (stats.quietMs(now) <= STALL_FLOOR_MS) return verdict;
  // Nothing heard from it for a second: is any method's wait there past what that method takes?
  // A method no candidate has answered yet is no evidence (a first call of a batch job takes a
  // minute): one whose answers would have come is. Calls that waited so and gave up (a hung
  // process's fast calls time out) count until it answers anything.
  const heardAt = stats.heardAt;
  for (const wait of stats.methodWaits) {
    if (wait === undefined) continue;
    const waiting = wait.awaiting > 0 ? now - Math.max(wait.since, heardAt) : 0;
    const gaveUp = wait.unansweredHeardAt === heardAt ? wait.unansweredMs : 0;
    if (waiting <= STALL_FLOOR_MS && gaveUp <= STALL_FLOOR_MS) continue;
    const limit = limitOf(wait.key, views, now, 0);
    if (limit > 0 && (waiting > limit || gaveUp > limit)) return HUNG;
  }
  return verdict;
}

/**
 * `method`'s limit among `views`: the longer of the floor and {@link STALL_FACTOR} times the
 * slowest candidate's typical call of it; `unknown` when no candidate has answered it yet.
 * Found once per candidate list and instant, kept on the key: a fleet of a hundred whose every
 * provider is asked about the same method scans the fleet once, not a hundred times.
 */
function limitOf(method: MethodKey, views: readonly { readonly stats: LiveProviderStats }[], now: number, unknown: number): number {
  if (method.memoViews !== views || method.memoAt !== now) {
    let slowest = 0;
    for (const view of views) {
      const typical = view.stats.methodWait(method)?.typicalMs ?? 0;
      if (typical > slowest) slowest = typical;
    }
    method.memoViews = views;
    method.memoAt = now;
    method.memoSlowestMs = slowest;
  }
  return method.memoSlowestMs === 0 ? unknown : Math.max(STALL_FLOOR_MS, STALL_FACTOR * method.memoSlowestMs);
}
