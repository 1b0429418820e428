import { checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Invocation } from '../call/invocation.js';
import { ENVIRONMENT_KEYS, environmentOption } from './environment.js';
import { LeastLoaded, loadScore, SCORING_KEYS, scoringOption } from './load-score.js';
import type { LoadBalancer, ProviderView, RouteDecision } from './loadbalance.js';
import { PREFIX_KEYS, PrefixTracker } from './prefix-tracker.js';
import { hasRoom, skipsFull } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'prefix-affinity';

/**
 * Cache-aware routing in the manner of SGLang's router and Dynamo's KV router, client-side:
 *
 * 1. The prompt (the call's routing key) is cut into blocks of `blockChars` characters (64 by
 *    default, about 16 tokens) and hashed as a chain, so equal hashes mean equal prefixes.
 * 2. An approximate index (prefix-tracker.ts, prefix-index.ts) remembers the blocks recently routed to each
 *    provider, up to the provider's advertised `kvCapacityTokens` (else `defaultCapacityBlocks`)
 *    — an estimate of what its KV cache still holds.
 * 3. The provider holding the longest prefix wins (`hit`), unless its load score exceeds the
 *    least loaded provider's by more than `spillMargin` (load-score.ts units: batches of
 *    requests ahead + seconds of prefill ahead), in which case the call goes to the least
 *    loaded one (`spill`) — the bounded-load rule that keeps a popular prefix from melting one
 *    worker. With no prefix held anywhere the call goes to the least loaded (`cold`); with no
 *    prompt at all, likewise (`fallback`).
 * 4. The chosen provider is recorded as now holding the prompt's blocks.
 *
 * Options: `{ blockChars, maxBlocks, defaultCapacityBlocks, spillMargin, staleAfterMs,
 * prefillTokensPerSecond, clock, random }`.
 */
export const createPrefixAffinityBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('prefix-affinity loadbalance options', options, [...PREFIX_KEYS, 'spillMargin', ...SCORING_KEYS, ...ENVIRONMENT_KEYS]);
  const env = environmentOption(TYPE_NAME, options);
  const tracker = PrefixTracker.fromOptions(TYPE_NAME, options);
  const spillMargin = options['spillMargin'] ?? 0.5;
  if (typeof spillMargin !== 'number' || !(spillMargin >= 0)) throw invalidOption('prefix-affinity spillMargin', spillMargin, 'a number >= 0');
  const scoring = scoringOption(TYPE_NAME, options);

  const decide = (all: readonly ProviderView[], invocation: Invocation, now: number): RouteDecision => {
    const hashes = tracker.hashesOf(invocation);
    // The candidates as given (not withRoom's copy), so the index knows them from the last call.
    const matches = hashes.length === 0 ? undefined : tracker.matchEach(all, hashes);
    const skipFull = skipsFull(all);
    // One pass scores each candidate once, for both the least loaded and the best hit.
    const least = new LeastLoaded();
    let best: ProviderView | undefined;
    let bestBlocks = 0;
    let bestScore = Infinity;
    for (let i = 0; i < all.length; i++) {
      const provider = all[i]!;
      if (skipFull && !hasRoom(provider)) continue;
      const score = loadScore(provider, now, scoring);
      least.offer(provider, score);
      const blocks = matches === undefined ? 0 : matches[i]!;
      if (blocks === 0) continue;
      if (blocks > bestBlocks || (blocks === bestBlocks && score < bestScore)) {
        best = provider;
        bestBlocks = blocks;
        bestScore = score;
      }
    }
    const leastProvider = least.pick(env.random);
    if (hashes.length === 0) return { provider: leastProvider, policy: TYPE_NAME, branch: 'fallback' };
    if (best === undefined) return { provider: leastProvider, policy: TYPE_NAME, branch: 'cold', detail: { blocks: hashes.length, score: least.score } };
    if (bestScore > least.score + spillMargin) {
      return {
        provider: leastProvider,
        policy: TYPE_NAME,
        branch: 'spill',
        detail: { matched: bestBlocks, blocks: hashes.length, hitScore: bestScore, score: least.score },
      };
    }
    return { provider: best, policy: TYPE_NAME, branch: 'hit', detail: { matched: bestBlocks, blocks: hashes.length, score: bestScore } };
  };

  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[], invocation: Invocation) {
      const now = env.now();
      tracker.markSeen(providers, now);
      const decision =
        providers.length === 1 && invocation.routingKey === undefined
          ? ({ provider: providers[0]!, policy: TYPE_NAME, branch: 'only' } as RouteDecision)
          : decide(providers, invocation, now);
      tracker.record(decision.provider, invocation);
      return decision;
    },
  };
};
