import { checkInt, optionKeys } from '../common/validate.js';
import type { LoadSnapshot } from '../registry/registry.js';
import type { ExtensionOptions } from '../common/extension-registry.js';
import type { ProviderView } from './loadbalance.js';
import { busyCalls, slots } from './weights.js';

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
    prefillTokensPerSecond: checkInt(
      `${policy} loadbalance prefillTokensPerSecond`,
      options['prefillTokensPerSecond'],
      1,
      1e9,
      DEFAULT_LOAD_SCORE.prefillTokensPerSecond,
    ),
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
  const load = freshestLoad(view);
  const trust = trustIn(load, now, options);
  return { requests: requestsAhead(view, load, trust), uncachedTokens: tokensAhead(view, load, trust), trust };
}

/** How much `load` counts at `now`: 1 on arrival, linearly less until `staleAfterMs`, then 0. */
function trustIn(load: LoadSnapshot | undefined, now: number, options: LoadScoreOptions): number {
  const age = load === undefined ? Infinity : Math.max(0, now - arrival(load));
  return options.staleAfterMs <= 0 ? (age <= 0 ? 1 : 0) : Math.max(0, 1 - age / options.staleAfterMs);
}

function requestsAhead(view: ProviderView, load: LoadSnapshot | undefined, trust: number): number {
  const stats = view.stats;
  // This consumer's calls there, with its recent failed answers counted as calls (busyCalls).
  const own = busyCalls(stats);
  if (trust === 0 || load === undefined) return own;
  // Never fewer than this consumer's own calls still running there: a snapshot that counts
  // fewer is wrong (a worker whose report is frozen at idle, or that leaves its queue out), and
  // believing it would send every call to the worker that says it is idle.
  const reported = Math.max(own, load.running + load.waiting + Math.min(stats.startedSinceLoad, stats.inFlight));
  return trust * reported + (1 - trust) * own;
}

function tokensAhead(view: ProviderView, load: LoadSnapshot | undefined, trust: number): number {
  const stats = view.stats;
  if (trust === 0 || load === undefined) return stats.inFlightTokens;
  const reportedTokens = load.waitingUncachedTokens + Math.min(stats.tokensSinceLoad, stats.inFlightTokens);
  return trust * reportedTokens + (1 - trust) * stats.inFlightTokens;
}

/**
 * The share of the providers' reported load that is this consumer's own: the calls it still has
 * in flight that its latest snapshots already counted, over all the calls those snapshots
 * counted. 1 when they report nothing (no evidence of anyone else), and at most 1 (a snapshot
 * can be older than calls that have since finished). Near 1 when this consumer sends all the
 * traffic; near 1/N when N consumers share a fleet alike.
 */
export function ownShareOfLoad(providers: readonly ProviderView[]): number {
  let own = 0;
  let reported = 0;
  for (const provider of providers) {
    const load = freshestLoad(provider);
    if (load === undefined) continue;
    const stats = provider.stats;
    own += stats.inFlight - Math.min(stats.startedSinceLoad, stats.inFlight);
    reported += load.running + load.waiting;
  }
  return reported <= 0 ? 1 : Math.min(1, own / reported);
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
  // estimateLoad() without its object: this runs for every candidate of every decision.
  const load = freshestLoad(view);
  const trust = trustIn(load, now, options);
  return requestsAhead(view, load, trust) / slots(view.instance) + tokensAhead(view, load, trust) / prefillRate(view, options.prefillTokensPerSecond);
}

/** The provider with the lowest score; ties broken with `random` (called once per call). */
export function leastLoaded(
  providers: readonly ProviderView[],
  now: number,
  options?: LoadScoreOptions,
  random: () => number = Math.random,
): { provider: ProviderView; score: number } {
  const least = new LeastLoaded();
  for (const provider of providers) least.offer(provider, loadScore(provider, now, options));
  return { provider: least.pick(random), score: least.score };
}

/**
 * {@link leastLoaded} as a running minimum, for a balancer that scores each candidate once and
 * uses the score for more than finding the least loaded.
 */
export class LeastLoaded {
  /** The lowest score offered so far (Infinity before any). */
  score = Infinity;
  #first: ProviderView | undefined;
  /** Made only when scores tie, as they do in an idle fleet. */
  #ties: ProviderView[] | undefined;

  offer(provider: ProviderView, score: number): void {
    if (score < this.score) {
      this.score = score;
      this.#first = provider;
      this.#ties = undefined;
    } else if (score === this.score) {
      if (this.#first === undefined) this.#first = provider;
      else (this.#ties ??= [this.#first]).push(provider);
    }
  }

  /** One of the providers with the lowest score, drawn with `random` (called exactly once). */
  pick(random: () => number): ProviderView {
    const draw = random();
    return this.#ties === undefined ? this.#first! : this.#ties[Math.floor(draw * this.#ties.length)]!;
  }
}
