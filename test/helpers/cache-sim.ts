import { prefixBlockHashes } from '../../src/loadbalance/hash.js';
import type { LoadBalancer, ProviderView } from '../../src/loadbalance/loadbalance.js';
import { invocation, view, type TestView } from './lb.js';

/*
 * A small discrete-event simulation for routing tests: providers with a real LRU cache of
 * prompt blocks (what an engine's prefix cache would hold), requests arriving on a virtual
 * clock and occupying a provider for a time that grows with the uncached part of their
 * prompt. The balancer under test sees only what a consumer would: its own calls in flight.
 */

export const BLOCK_CHARS = 64;

export interface SimResult {
  /** Prompt tokens served from a provider's cache / all prompt tokens. */
  hitRate: number;
  /** Requests per provider. */
  perProvider: number[];
}

/** A chat-like workload: `prefixes` system prompts shared by many requests, unique user turns. */
export function chatWorkload(requests: number, prefixes: number, seed = 1): string[] {
  let state = seed;
  const random = (): number => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
  const systems = Array.from({ length: prefixes }, (_, i) => `system prompt ${i}: `.padEnd(4096, `rule ${i} `));
  return Array.from({ length: requests }, (_, i) => {
    // A skewed popularity (like real tenants): prefix index ~ random^2.
    const system = systems[Math.floor(random() * random() * prefixes)]!;
    return `${system}user ${i}: ${'question words '.repeat(20 + Math.floor(random() * 40))}`;
  });
}

/** Runs `prompts` through `balancer` over `providerCount` providers with `cacheBlocks` each. */
export function simulate(
  balancer: LoadBalancer | ((providers: readonly TestView[], caches: readonly Map<number, true>[], prompt: string) => ProviderView),
  prompts: readonly string[],
  providerCount: number,
  cacheBlocks: number,
): SimResult {
  const providers = Array.from({ length: providerCount }, (_, i) => view(i + 1, { metadata: { slots: 8, kvCapacityTokens: (cacheBlocks * BLOCK_CHARS) / 4 } }));
  const caches = providers.map(() => new Map<number, true>());
  const finishing: Array<{ at: number; provider: TestView; tokens: number }> = [];
  let hitTokens = 0;
  let totalTokens = 0;
  const perProvider = new Array<number>(providerCount).fill(0);
  prompts.forEach((prompt, i) => {
    const now = i * 20; // a request every 20 ms
    for (let j = finishing.length - 1; j >= 0; j--) {
      const done = finishing[j]!;
      if (done.at <= now) {
        done.provider.stats.end(done.tokens, 0, now, false);
        finishing.splice(j, 1);
      }
    }
    const chosen = (typeof balancer === 'function' ? balancer(providers, caches, prompt) : balancer.select(providers, invocation(prompt)).provider) as TestView;
    const index = providers.indexOf(chosen);
    const hashes = prefixBlockHashes(prompt, BLOCK_CHARS, 4096);
    const cache = caches[index]!;
    let hit = 0;
    while (hit < hashes.length && cache.has(hashes[hit]!)) hit++;
    // Like vLLM's evictor, the engine keeps cached prefixes whole: of a sequence's blocks the
    // last ones go first (touching them last to first makes the first ones the most recent).
    for (let b = hashes.length - 1; b >= 0; b--) {
      cache.delete(hashes[b]!);
      cache.set(hashes[b]!, true);
    }
    while (cache.size > cacheBlocks) cache.delete(cache.keys().next().value as number);
    const tokens = Math.ceil(prompt.length / 4);
    const hitTokensHere = (hit * BLOCK_CHARS) / 4;
    hitTokens += hitTokensHere;
    totalTokens += tokens;
    perProvider[index]!++;
    chosen.stats.start(tokens);
    // Service time: a fixed decode part plus prefill of the uncached tokens at 20k tokens/s.
    finishing.push({ at: now + 400 + ((tokens - hitTokensHere) / 20_000) * 1000, provider: chosen, tokens });
  });
  return { hitRate: hitTokens / totalTokens, perProvider };
}

/**
 * The oracle: it sees the providers' real caches and sends each prompt to the provider with
 * the longest cached prefix, under the same bounded-load rule as prefix-affinity (no more than
 * `spill` calls in flight above the least loaded), so the comparison is about cache knowledge.
 */
export function oracle(spill: number) {
  return (providers: readonly TestView[], caches: readonly Map<number, true>[], prompt: string): ProviderView => {
    const hashes = prefixBlockHashes(prompt, BLOCK_CHARS, 4096);
    const least = Math.min(...providers.map((provider) => provider.stats.inFlight));
    let best = providers.find((provider) => provider.stats.inFlight === least)!;
    let bestHit = -1;
    providers.forEach((provider, i) => {
      if (provider.stats.inFlight > least + spill) return;
      let hit = 0;
      while (hit < hashes.length && caches[i]!.has(hashes[hit]!)) hit++;
      if (hit > bestHit || (hit === bestHit && provider.stats.inFlight < best.stats.inFlight)) {
        best = provider;
        bestHit = hit;
      }
    });
    return best;
  };
}
