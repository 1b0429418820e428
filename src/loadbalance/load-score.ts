import { capacity } from './weights.js';
import type { ProviderView } from './loadbalance.js';

/** Settings of {@link loadScore}. */
export interface LoadScoreOptions {
  /** A snapshot older than this (by its arrival here) is not trusted; 2 s by default. */
  readonly staleAfterMs: number;
  /** Prefill speed assumed when the provider does not advertise `prefillTokensPerSecond`. */
  readonly prefillTokensPerSecond: number;
}

export const DEFAULT_LOAD_SCORE: LoadScoreOptions = { staleAfterMs: 2000, prefillTokensPerSecond: 20_000 };

/**
 * How busy a provider is, as the time new work would wait there, in seconds-like units:
 *
 *     score = (running + waiting + sent) / slots
 *           + (waitingUncachedTokens + sentTokens) / prefillTokensPerSecond
 *
 * where `sent` is this consumer's calls started since the snapshot arrived and still in flight
 * (min(startedSinceLoad, inFlight): one that already finished is load no more).
 *
 * The first term is batches of requests ahead of a new one (normalised by the worker's slots,
 * so an 8-slot and a 32-slot worker compare fairly); the second is seconds of prefill queued.
 *
 * Staleness policy: the provider's snapshot is used when it arrived less than `staleAfterMs`
 * ago, plus what this consumer sent since it arrived (which the snapshot cannot contain). With
 * no snapshot, or a stale one, only this consumer's own in-flight calls and tokens count —
 * a partial view, but never a stale one.
 */
export function loadScore(view: ProviderView, now: number, options: LoadScoreOptions = DEFAULT_LOAD_SCORE): number {
  const instance = view.instance;
  const stats = view.stats;
  const slots = capacity(instance) === Infinity ? 1 : capacity(instance);
  const advertised = instance.metadata['prefillTokensPerSecond'];
  const prefillRate = typeof advertised === 'number' && advertised > 0 ? advertised : options.prefillTokensPerSecond;
  const load = instance.load;
  const fresh = load !== undefined && now - (load.receivedAt ?? load.timestamp) <= options.staleAfterMs;
  if (fresh) {
    const sent = Math.min(stats.startedSinceLoad, stats.inFlight);
    const sentTokens = Math.min(stats.tokensSinceLoad, stats.inFlightTokens);
    return (load.running + load.waiting + sent) / slots + (load.waitingUncachedTokens + sentTokens) / prefillRate;
  }
  return stats.inFlight / slots + stats.inFlightTokens / prefillRate;
}

/** The provider with the lowest score; ties broken at random. */
export function leastLoaded(providers: readonly ProviderView[], now: number, options?: LoadScoreOptions): { provider: ProviderView; score: number } {
  let best: ProviderView[] = [];
  let bestScore = Infinity;
  for (const provider of providers) {
    const score = loadScore(provider, now, options);
    if (score < bestScore) {
      bestScore = score;
      best = [provider];
    } else if (score === bestScore) best.push(provider);
  }
  return { provider: best[Math.floor(Math.random() * best.length)]!, score: bestScore };
}
