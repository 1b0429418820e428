import type { LiveProviderStats } from './provider-stats.js';

/** A provider quiet for less than this is never taken for hung, however fast the fleet. */
export const STALL_FLOOR_MS = 1000;
/** …nor for less than this many times the slowest typical call among the candidates. */
export const STALL_FACTOR = 4;

/**
 * The candidates without the ones that look hung: calls waiting there for their first answer
 * and nothing heard from it for longer than {@link STALL_FLOOR_MS} and {@link STALL_FACTOR}
 * times the slowest candidate's typical successful call (LiveProviderStats.typicalMs). A worker
 * whose handlers never return keeps its connection, heartbeats and load reports alive, so
 * nothing else finds it before its calls' deadlines: round-robin and random went on sending it
 * their share of the calls — a quarter of all calls of four workers — each one waiting out its
 * deadline. Such a provider is passed over while another remains, like one whose connection is
 * down; the first answer it sends ends that. Its calls already in flight run to their
 * deadlines, and their failures eject it as any others would. A stream delivering chunks is
 * not waiting, however long it runs.
 */
export function withoutStalled<T extends { readonly stats: LiveProviderStats }>(views: readonly T[], now: number): readonly T[] {
  if (views.length < 2) return views;
  let suspects = 0;
  for (const view of views) if (view.stats.quietMs(now) > STALL_FLOOR_MS) suspects++;
  if (suspects === 0) return views;
  let slowest = 0;
  for (const view of views) if (view.stats.typicalMs > slowest) slowest = view.stats.typicalMs;
  const limit = Math.max(STALL_FLOOR_MS, STALL_FACTOR * slowest);
  const heard = views.filter((view) => view.stats.quietMs(now) <= limit);
  return heard.length === 0 ? views : heard;
}
