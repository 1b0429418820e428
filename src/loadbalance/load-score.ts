import { checkInt, optionKeys } from '../common/validate.js';
import type { LoadSnapshot } from '../registry/registry.js';
import type { ExtensionOptions } from '../common/extension-registry.js';
import type { ProviderView } from './loadbalance.js';
import { slots } from './weights.js';

/** Settings of {@link loadScore}. */
export interface LoadScoreOptions {
  /** A snapshot this old (by its arrival here) counts for nothing; 2 s by default. */
  readonly staleAfterMs: number;
  /** Prefill speed assumed when the provider does not advertise `prefillTokensPerSecond`. */
  readonly prefillTokensPerSecond: number;
}

export const DEFAULT_LOAD_SCORE: LoadScoreOptions = { staleAfterMs: 2000, prefillTokensPerSecond: 20_000 };

/** The option keys {@link scoringOption} reads. */
export const SCORING_KEYS: readonly string[] = optionKeys<LoadScoreOptions>()(['staleAfterMs', 'prefillTokensPerSecond']);

/** Reads and checks `{ staleAfterMs, prefillTokensPerSecond }` for `policy`. */
export function scoringOption(policy: string, options: ExtensionOptions): LoadScoreOptions {
  return {
    staleAfterMs: checkInt(`${policy} loadbalance staleAfterMs`, options['staleAfterMs'], 0, 3_600_000, DEFAULT_LOAD_SCORE.staleAfterMs),
    prefillTokensPerSecond: checkInt(`${policy} loadbalance prefillTokensPerSecond`, options['prefillTokensPerSecond'], 1, 1e9, DEFAULT_LOAD_SCORE.prefillTokensPerSecond),
  };
}

/** What is ahead of a new call at one provider, as well as this consumer can tell. */
export interface LoadEstimate {
  /** Requests in the provider (running and queued), including what this consumer sent since its snapshot. */
  readonly requests: number;
  /** Uncached prompt tokens queued there, likewise. */
  readonly uncachedTokens: number;
  /** How much the snapshot counted, 1 (just arrived) to 0 (stale or none). */
  readonly trust: number;
}

/**
 * The freshest load signal of a provider: the snapshot piggybacked on its latest answer
 * (`stats.load`) or the registry's (`instance.load`), whichever arrived last.
 */
export function freshestLoad(view: Pick<ProviderView, 'instance' | 'stats'>): LoadSnapshot | undefined {
  const registry = view.instance.load;
  const piggybacked = view.stats.load;
  if (piggybacked === undefined) return registry;
  if (registry === undefined) return piggybacked;
  return arrival(piggybacked) >= arrival(registry) ? piggybacked : registry;
}

function arrival(load: LoadSnapshot): number {
  return load.receivedAt ?? load.timestamp;
}

/**
 * The load ahead of a new call at `view`. The freshest snapshot, plus what this consumer sent
 * since it arrived (min(startedSinceLoad, inFlight): a call that already finished is load no
 * more), is weighted by its age — fully trusted on arrival, linearly less until `staleAfterMs`,
 * then not at all — against this consumer's own in-flight calls and tokens: a partial view,
 * but never a stale one. `now` must be on the clock that stamped `receivedAt`.
 */
export function estimateLoad(view: ProviderView, now: number, options: LoadScoreOptions = DEFAULT_LOAD_SCORE): LoadEstimate {
  const stats = view.stats;
  const load = freshestLoad(view);
  const age = load === undefined ? Infinity : Math.max(0, now - arrival(load));
  const trust = options.staleAfterMs <= 0 ? (age <= 0 ? 1 : 0) : Math.max(0, 1 - age / options.staleAfterMs);
  if (trust === 0 || load === undefined) return { requests: stats.inFlight, uncachedTokens: stats.inFlightTokens, trust: 0 };
  const sent = Math.min(stats.startedSinceLoad, stats.inFlight);
  const sentTokens = Math.min(stats.tokensSinceLoad, stats.inFlightTokens);
  const reported = load.running + load.waiting + sent;
  const reportedTokens = load.waitingUncachedTokens + sentTokens;
  return {
    requests: trust * reported + (1 - trust) * stats.inFlight,
    uncachedTokens: trust * reportedTokens + (1 - trust) * stats.inFlightTokens,
    trust,
  };
}

/** The provider's advertised prefill speed (`metadata.prefillTokensPerSecond`), else `fallback`. */
export function prefillRate(view: ProviderView, fallback: number): number {
  const advertised = view.instance.metadata['prefillTokensPerSecond'];
  return typeof advertised === 'number' && advertised > 0 ? advertised : fallback;
}

/**
 * How busy a provider is, as the time new work would wait there, in seconds-like units:
 *
 *     score = requests ahead / slots + uncached tokens ahead / prefillTokensPerSecond
 *
 * with both from {@link estimateLoad}. The first term is batches of requests ahead of a new
 * one, normalised by the worker's batch slots (`metadata.slots`, see `slots()`), so a 4-slot
 * and a 32-slot worker compare fairly; the second is seconds of prefill queued.
 */
export function loadScore(view: ProviderView, now: number, options: LoadScoreOptions = DEFAULT_LOAD_SCORE): number {
  const estimate = estimateLoad(view, now, options);
  return estimate.requests / slots(view.instance) + estimate.uncachedTokens / prefillRate(view, options.prefillTokensPerSecond);
}

/** The provider with the lowest score; ties broken with `random`. */
export function leastLoaded(
  providers: readonly ProviderView[],
  now: number,
  options?: LoadScoreOptions,
  random: () => number = Math.random,
): { provider: ProviderView; score: number } {
  let best: ProviderView[] = [];
  let bestScore = Infinity;
  for (const provider of providers) {
    const score = loadScore(provider, now, options);
    if (score < bestScore) {
      bestScore = score;
      best = [provider];
    } else if (score === bestScore) best.push(provider);
  }
  return { provider: best[Math.floor(random() * best.length)]!, score: bestScore };
}
