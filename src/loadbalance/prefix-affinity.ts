import { checkInt, checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import type { Invocation } from '../transport/transport.js';
import { prefixBlockHashes } from './hash.js';
import { DEFAULT_LOAD_SCORE, leastLoaded, loadScore, type LoadScoreOptions } from './load-score.js';
import type { LoadBalancer, ProviderView, RouteDecision } from './loadbalance.js';
import { PrefixIndex } from './prefix-index.js';
import { withRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'prefix-affinity';

/** Characters per token assumed when turning prompt length into tokens. */
const CHARS_PER_TOKEN = 4;

/**
 * Cache-aware routing in the manner of SGLang's router and Dynamo's KV router, client-side:
 *
 * 1. The prompt (the call's routing key) is cut into blocks of `blockChars` characters (64 by
 *    default, about 16 tokens) and hashed as a chain, so equal hashes mean equal prefixes.
 * 2. An approximate index (prefix-index.ts) remembers the blocks recently routed to each
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
 * prefillTokensPerSecond }`.
 */
export const createPrefixAffinityBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('prefix-affinity loadbalance options', options, ['blockChars', 'maxBlocks', 'defaultCapacityBlocks', 'spillMargin', 'staleAfterMs', 'prefillTokensPerSecond']);
  const blockChars = checkInt('prefix-affinity blockChars', options['blockChars'], 8, 65_536, 64);
  if (blockChars % 2 !== 0) throw invalidOption('prefix-affinity blockChars', blockChars, 'an even number of characters from 8 to 65536');
  const maxBlocks = checkInt('prefix-affinity maxBlocks', options['maxBlocks'], 1, 1_000_000, 4096);
  const defaultCapacity = checkInt('prefix-affinity defaultCapacityBlocks', options['defaultCapacityBlocks'], 1, 10_000_000, 8192);
  const spillMargin = options['spillMargin'] ?? 0.5;
  if (typeof spillMargin !== 'number' || !(spillMargin >= 0)) throw invalidOption('prefix-affinity spillMargin', spillMargin, 'a number >= 0');
  const scoring: LoadScoreOptions = {
    staleAfterMs: checkInt('prefix-affinity staleAfterMs', options['staleAfterMs'], 0, 3_600_000, DEFAULT_LOAD_SCORE.staleAfterMs),
    prefillTokensPerSecond: checkInt('prefix-affinity prefillTokensPerSecond', options['prefillTokensPerSecond'], 1, 1e9, DEFAULT_LOAD_SCORE.prefillTokensPerSecond),
  };
  const blockTokens = blockChars / CHARS_PER_TOKEN;
  const index = new PrefixIndex();
  /**
   * The last call's hashes, so a retry of it on another provider (which comes right after) does
   * not hash the prompt again. One slot rather than a WeakMap: ephemeron entries made per call
   * cost the garbage collector more than the lookup saves.
   */
  let lastInvocation: Invocation | undefined;
  let lastHashes: number[] = [];
  const hashesOf = (invocation: Invocation, key: string): number[] => {
    if (invocation !== lastInvocation) {
      lastInvocation = invocation;
      lastHashes = prefixBlockHashes(key, blockChars, maxBlocks);
    }
    return lastHashes;
  };
  /**
   * When each provider was last a candidate. A provider unseen for a minute has left the
   * registry (or been ejected for long); its index share is dropped then. Pruning by what one
   * call's candidates lack would be wrong: a retry excludes providers that are still there.
   */
  const lastSeen = new Map<string, number>();
  let nextMark = 0;
  let nextPrune = 0;

  const capacityBlocks = (provider: ProviderView): number => {
    const tokens = provider.instance.metadata['kvCapacityTokens'];
    return typeof tokens === 'number' && tokens > 0 ? Math.max(1, Math.floor(tokens / blockTokens)) : defaultCapacity;
  };

  const decide = (all: readonly ProviderView[], invocation: Invocation): RouteDecision => {
    const now = Date.now();
    const providers = withRoom(all);
    const key = invocation.routingKey;
    if (key === undefined || key.length < blockChars) {
      return { provider: leastLoaded(providers, now, scoring).provider, policy: TYPE_NAME, branch: 'fallback' };
    }
    const hashes = hashesOf(invocation, key);
    const least = leastLoaded(providers, now, scoring);
    let best: ProviderView | undefined;
    let bestBlocks = 0;
    let bestScore = Infinity;
    for (const provider of providers) {
      const blocks = index.matchOne(provider.address, hashes);
      if (blocks === 0) continue;
      const score = loadScore(provider, now, scoring);
      if (blocks > bestBlocks || (blocks === bestBlocks && score < bestScore)) {
        best = provider;
        bestBlocks = blocks;
        bestScore = score;
      }
    }
    if (best === undefined) return { provider: least.provider, policy: TYPE_NAME, branch: 'cold', detail: { blocks: hashes.length, score: least.score } };
    if (bestScore > least.score + spillMargin) {
      return { provider: least.provider, policy: TYPE_NAME, branch: 'spill', detail: { matched: bestBlocks, blocks: hashes.length, hitScore: bestScore, score: least.score } };
    }
    return { provider: best, policy: TYPE_NAME, branch: 'hit', detail: { matched: bestBlocks, blocks: hashes.length, score: bestScore } };
  };

  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[], invocation: Invocation) {
      const now = Date.now();
      if (now >= nextMark) {
        nextMark = now + 1000;
        for (const provider of providers) lastSeen.set(provider.address, now);
      }
      if (now >= nextPrune) {
        nextPrune = now + 10_000;
        for (const [address, seen] of lastSeen) if (now - seen > 60_000) lastSeen.delete(address);
        index.retainOnly(new Set(lastSeen.keys()));
      }
      const decision = providers.length === 1 && invocation.routingKey === undefined
        ? ({ provider: providers[0]!, policy: TYPE_NAME, branch: 'only' } as RouteDecision)
        : decide(providers, invocation);
      const key = invocation.routingKey;
      if (key !== undefined && key.length >= blockChars) index.record(decision.provider.address, hashesOf(invocation, key), capacityBlocks(decision.provider));
      return decision;
    },
  };
};
