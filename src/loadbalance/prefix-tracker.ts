import { checkInt, invalidOption } from '../common/validate.js';
import type { ExtensionOptions } from '../common/extension-registry.js';
import type { Invocation } from '../call/invocation.js';
import { summaryMatch } from './cache-summary.js';
import { prefixBlockHashes } from './hash.js';
import type { LoadSnapshot } from '../registry/registry.js';
import type { ProviderView } from './loadbalance.js';
import { PrefixIndex } from './prefix-index.js';

/** Characters per token assumed when turning prompt length into tokens. */
export const CHARS_PER_TOKEN = 4;

/**
 * The most blocks the index keeps for one provider, whatever it advertises: 2^20, 16.7 M tokens
 * of 16-token blocks, more than the KV cache of the largest engines (an 8-GPU node holds a few
 * million tokens).
 */
export const MAX_CAPACITY_BLOCKS = 2 ** 20;

/** The option keys {@link PrefixTracker.fromOptions} reads. */
export const PREFIX_KEYS: readonly string[] = ['blockChars', 'maxBlocks', 'defaultCapacityBlocks'];

/**
 * The cache-aware balancers' shared machinery: cuts a call's routing key (its prompt) into
 * block-chained hashes (hash.ts) and keeps a {@link PrefixIndex} of the blocks recently routed
 * to each provider, bounded by the provider's advertised `kvCapacityTokens` (else
 * `defaultCapacityBlocks`) — a guess at what its KV cache still holds — and merges that guess
 * with what the provider itself says it holds (`LoadSnapshot.cachedPrefixes`, a compact summary,
 * cache-summary.ts), so consumers in front of one fleet agree about where a prefix lives.
 */
export class PrefixTracker {
  readonly blockChars: number;
  readonly blockTokens: number;
  readonly #maxBlocks: number;
  readonly #defaultCapacity: number;
  readonly index = new PrefixIndex();
  /**
   * Each call's hashes, computed on its first pick and reused by its retries, which pick again
   * with the same invocation object, often after other calls' picks. The last call's are also
   * kept in a slot, for the record that follows each pick.
   */
  readonly #hashes = new WeakMap<Invocation, number[]>();
  #lastInvocation: Invocation | undefined;
  #lastHashes: number[] = [];
  /**
   * When each provider was last a candidate. A provider unseen for a minute has left the
   * registry (or been ejected for long); its index share is dropped then. Pruning by what one
   * call's candidates lack would be wrong: a retry excludes providers that are still there.
   */
  readonly #lastSeen = new Map<string, number>();
  #nextMark = 0;
  #nextPrune = 0;
  /** Published summaries as sets, made once per summary received (not per call). */
  readonly #summaries = new WeakMap<readonly number[], ReadonlySet<number>>();

  constructor(blockChars: number, maxBlocks: number, defaultCapacityBlocks: number) {
    this.blockChars = blockChars;
    this.blockTokens = blockChars / CHARS_PER_TOKEN;
    this.#maxBlocks = maxBlocks;
    this.#defaultCapacity = defaultCapacityBlocks;
  }

  /** Reads and checks `{ blockChars, maxBlocks, defaultCapacityBlocks }` for `policy`. */
  static fromOptions(policy: string, options: ExtensionOptions): PrefixTracker {
    const blockChars = checkInt(`${policy} blockChars`, options['blockChars'], 8, 65_536, 64);
    if (blockChars % 2 !== 0) throw invalidOption(`${policy} blockChars`, blockChars, 'an even number of characters from 8 to 65536');
    const maxBlocks = checkInt(`${policy} maxBlocks`, options['maxBlocks'], 1, 1_000_000, 4096);
    const defaultCapacity = checkInt(`${policy} defaultCapacityBlocks`, options['defaultCapacityBlocks'], 1, 10_000_000, 8192);
    return new PrefixTracker(blockChars, maxBlocks, defaultCapacity);
  }

  /** The block hashes of the call's routing key; empty when it has none or it is shorter than a block. */
  hashesOf(invocation: Invocation): readonly number[] {
    const key = invocation.routingKey;
    if (key === undefined || key.length < this.blockChars) return [];
    if (invocation !== this.#lastInvocation) {
      let hashes = this.#hashes.get(invocation);
      if (hashes === undefined) {
        hashes = prefixBlockHashes(key, this.blockChars, this.#maxBlocks);
        this.#hashes.set(invocation, hashes);
      }
      this.#lastInvocation = invocation;
      this.#lastHashes = hashes;
    }
    return this.#lastHashes;
  }

  /**
   * How many leading blocks of `hashes` `provider` probably holds: the longer of this
   * consumer's own guess and the provider's published summary.
   */
  matched(provider: ProviderView, hashes: readonly number[]): number {
    const guessed = this.index.matched(provider.address, hashes);
    const summary = publishedSummary(provider);
    return summary === undefined || summary.length === 0 ? guessed : this.#withSummary(guessed, hashes, summary);
  }

  /** The longer of `guessed` and the match a provider's published `summary` shows. */
  #withSummary(guessed: number, hashes: readonly number[], summary: readonly number[]): number {
    if (guessed === hashes.length) return guessed;
    let held = this.#summaries.get(summary);
    if (held === undefined) {
      held = new Set(summary);
      this.#summaries.set(summary, held);
    }
    return Math.max(guessed, summaryMatch(hashes, held, guessed));
  }

  /**
   * {@link matched} for each of `providers`, at the same positions, in an array that is valid
   * until the next call: one walk of the index for all of them.
   */
  matchEach(providers: readonly ProviderView[], hashes: readonly number[]): readonly number[] {
    const matches = this.index.matchEach(hashes, providers);
    for (let i = 0; i < providers.length; i++) {
      const summary = publishedSummary(providers[i]!);
      if (summary !== undefined && summary.length > 0) (matches as number[])[i] = this.#withSummary(matches[i]!, hashes, summary);
    }
    return matches;
  }

  /** Records that `provider` now holds the call's prompt. */
  record(provider: ProviderView, invocation: Invocation): void {
    const hashes = this.hashesOf(invocation);
    if (hashes.length > 0) this.index.record(provider.address, hashes, this.capacityBlocks(provider));
  }

  /**
   * How many blocks the index keeps for `provider`: its KV capacity, in blocks, at most
   * {@link MAX_CAPACITY_BLOCKS}. The figure is the worker's word: one advertising 1e308 tokens
   * would otherwise have every block ever routed to it kept here.
   */
  capacityBlocks(provider: ProviderView): number {
    const tokens = provider.instance.metadata['kvCapacityTokens'];
    if (typeof tokens !== 'number' || !(tokens > 0)) return this.#defaultCapacity;
    return Math.min(MAX_CAPACITY_BLOCKS, Math.max(1, Math.floor(tokens / this.blockTokens)));
  }

  /**
   * Notes the candidates as present (once a second) and drops providers unseen for a minute
   * (every 10 s); returns the providers still present when it pruned, for the caller's own
   * per-provider state, else undefined.
   */
  markSeen(providers: readonly ProviderView[], now: number): ReadonlySet<string> | undefined {
    if (now >= this.#nextMark) {
      this.#nextMark = now + 1000;
      for (const provider of providers) this.#lastSeen.set(provider.address, now);
    }
    if (now >= this.#nextPrune) {
      this.#nextPrune = now + 10_000;
      for (const [address, seen] of this.#lastSeen) if (now - seen > 60_000) this.#lastSeen.delete(address);
      const live = new Set(this.#lastSeen.keys());
      this.index.retainOnly(live);
      return live;
    }
    return undefined;
  }
}

/**
 * The freshest cache summary `provider` published. Not simply the freshest snapshot's: a load
 * report piggybacked on an answer never carries the summary (it is too large to repeat on every
 * answer), so once answers flow the summary comes from the registry's snapshot, however much
 * newer the piggybacked one is.
 */
export function publishedSummary(provider: Pick<ProviderView, 'instance' | 'stats'>): readonly number[] | undefined {
  const piggybacked = summaryIn(provider.stats.load);
  const registry = summaryIn(provider.instance.load);
  if (piggybacked === undefined || registry === undefined) return (piggybacked ?? registry)?.cachedPrefixes;
  return arrival(piggybacked) >= arrival(registry) ? piggybacked.cachedPrefixes : registry.cachedPrefixes;
}

function summaryIn(load: LoadSnapshot | undefined): LoadSnapshot | undefined {
  return load?.cachedPrefixes === undefined || load.cachedPrefixes.length === 0 ? undefined : load;
}

function arrival(load: LoadSnapshot): number {
  return load.receivedAt ?? load.timestamp;
}
