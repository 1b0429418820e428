import type { ServiceInstance } from '../registry/instance.js';
import type { LiveProviderStats } from './provider-stats.js';

/**
 * The candidates without those whose newest load says they are draining, while another
 * remains. The directory leaves out providers that the registry shows draining, but a load
 * piggybacked on an answer (or pushed between answers) is usually newer: a worker whose engine
 * went down or stalled says so on its very next answer, a registry poll later at best, and
 * calls picked meanwhile would go to it. Which of the two snapshots is newer is told by the
 * provider's own `timestamp` on each (one clock, so no skew between hosts matters); a newer
 * registry snapshot that no longer says draining wins. When every candidate is draining by
 * this rule they are all kept: the directory alone refuses a call for that.
 */
export function withoutDraining<T extends { readonly instance: ServiceInstance; readonly stats: Pick<LiveProviderStats, 'load'> }>(
  views: readonly T[],
): readonly T[] {
  if (views.length < 2) return views;
  let draining = 0;
  for (const view of views) if (drainingByAnswer(view)) draining++;
  if (draining === 0 || draining === views.length) return views;
  return views.filter((view) => !drainingByAnswer(view));
}

function drainingByAnswer(view: { readonly instance: ServiceInstance; readonly stats: Pick<LiveProviderStats, 'load'> }): boolean {
  const answer = view.stats.load;
  if (answer?.draining !== true) return false;
  const registry = view.instance.load;
  return registry === undefined || answer.timestamp >= registry.timestamp;
}
