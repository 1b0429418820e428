import { isLandmark } from '../../loadbalance/cache-summary.js';
import { prefixBlockHashes } from '../../loadbalance/hash.js';
import { MAX_CACHE_SUMMARY } from '../../registry/instance.js';
import { type BlockTable, chainSeed, tokenBlockHash } from './block-table.js';

/** One prompt the worker forwarded: its text as the router hashes it, and its tokens' blocks. */
interface PromptEntry {
  /** Text landmark lengths in router blocks, longest first, and their chain hashes. */
  readonly landmarkBlocks: readonly number[];
  readonly landmarkHashes: readonly number[];
  /** Characters of routing text per token of the prompt. */
  readonly charsPerToken: number;
  /** Tokens per block the token hashes were cut at. */
  readonly blockSize: number;
  /** Our chain hash of each full token block of the prompt. */
  readonly tokenHashes: Float64Array;
}

/** Limits of a {@link PromptLedger}. */
export interface PromptLedgerLimits {
  /** Prompts remembered, most recent kept. */
  readonly maxPrompts: number;
  /** Tokens of one prompt looked at (its first ones). */
  readonly maxPromptTokens: number;
  /** Token blocks of one prompt looked at (its first ones), whatever the block size. */
  readonly maxPromptBlocks: number;
  /** Token block hashes kept over all prompts (8 bytes each); the oldest prompts go beyond. */
  readonly maxBlocks: number;
  /** Characters per router block (the balancers' `blockChars`). */
  readonly blockChars: number;
}

/**
 * Translates the engine's cache, which is in tokens, into the router's terms, which are in
 * characters: the balancers hash a prompt's text in blocks of `blockChars` characters
 * (`prefixBlockHashes`), the engine its token ids in blocks of `block_size` tokens. For each
 * recent prompt the worker saw both — the text it was asked for and the token ids the engine
 * answered with — so when the engine's cache holds that prompt's first k token blocks, the
 * first k·block_size / tokens of its text is cached, and the router's landmark hashes up to that
 * length go in the summary. Text is mapped to tokens in proportion (a chat template's markup is
 * spread over the prompt); the landmarks' own granularity is 25 %.
 *
 * Bounded: `maxPrompts` entries of at most `maxPromptBlocks` token-block hashes each, and
 * `maxBlocks` hashes in all.
 */
export class PromptLedger {
  readonly #limits: PromptLedgerLimits;
  /** Keyed by the prompt's last block hash; most recently seen last. */
  readonly #entries = new Map<number, PromptEntry>();
  /** Token block hashes held over all entries. */
  #blocks = 0;
  /** Bumped on every change. */
  version = 0;

  constructor(limits: PromptLedgerLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Records a prompt the engine was given: `text` as the router hashed it (`promptText`), the
   * engine's token ids for it, cut into blocks of `blockSize`. A prompt shorter than one block
   * of either kind is not recorded (nothing of it can be cached).
   */
  record(text: string, tokenIds: ArrayLike<number>, blockSize: number, loraId?: number): void {
    const { blockChars, maxPromptTokens, maxPromptBlocks, maxPrompts, maxBlocks } = this.#limits;
    const tokens = Math.min(tokenIds.length, maxPromptTokens, maxPromptBlocks * blockSize);
    const blocks = Math.floor(tokens / blockSize);
    const textBlocks = Math.floor(Math.min(text.length, Math.ceil((text.length * tokens) / tokenIds.length)) / blockChars);
    if (blocks === 0 || textBlocks === 0) return;
    const tokenHashes = new Float64Array(blocks);
    let parent = chainSeed(loraId);
    for (let i = 0; i < blocks; i++) {
      parent = tokenBlockHash(tokenIds, i * blockSize, (i + 1) * blockSize, parent);
      tokenHashes[i] = parent;
    }
    const textHashes = prefixBlockHashes(text, blockChars, textBlocks);
    const landmarkBlocks: number[] = [];
    const landmarkHashes: number[] = [];
    for (let n = textHashes.length; n >= 1; n--) {
      if (!isLandmark(n)) continue;
      landmarkBlocks.push(n);
      landmarkHashes.push(textHashes[n - 1]!);
    }
    const key = tokenHashes[blocks - 1]!;
    this.#drop(key);
    this.#entries.set(key, { landmarkBlocks, landmarkHashes, charsPerToken: text.length / tokenIds.length, blockSize, tokenHashes });
    this.#blocks += blocks;
    // Taking the map's first key walks the entries deleted before it, at most about the map's
    // size: a few thousand here, where the block table's hundreds of thousands keep a queue.
    while (this.#entries.size > maxPrompts || this.#blocks > maxBlocks) this.#drop(this.#entries.keys().next().value as number);
    this.version++;
  }

  #drop(key: number): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#blocks -= entry.tokenHashes.length;
  }

  /** Forgets every prompt. */
  clear(): void {
    this.#entries.clear();
    this.#blocks = 0;
    this.version++;
  }

  /**
   * The cache summary (`LoadSnapshot.cachedPrefixes`): for each recorded prompt, most recent
   * first, the router's landmark hashes of the part of its text whose tokens `table` holds;
   * each hash once, at most {@link MAX_CACHE_SUMMARY}.
   */
  summary(table: BlockTable): number[] {
    const out = new Set<number>();
    const recentLast = [...this.#entries.values()];
    for (let i = recentLast.length - 1; i >= 0 && out.size < MAX_CACHE_SUMMARY; i--) {
      const entry = recentLast[i]!;
      if (entry.blockSize !== table.blockSize) continue;
      const held = heldBlocks(entry.tokenHashes, table);
      if (held === 0) continue;
      const textBlocks = Math.floor((held * entry.blockSize * entry.charsPerToken) / this.#limits.blockChars);
      for (let j = 0; j < entry.landmarkBlocks.length && out.size < MAX_CACHE_SUMMARY; j++) {
        if (entry.landmarkBlocks[j]! <= textBlocks) out.add(entry.landmarkHashes[j]!);
      }
    }
    return [...out];
  }
}

/**
 * How many of a prompt's first blocks the table holds. An engine evicts a sequence's blocks
 * from the tail (its first blocks are shared and are the last to go), so the held blocks are a
 * prefix and a binary search finds its end.
 */
function heldBlocks(hashes: Float64Array, table: BlockTable): number {
  let low = 0;
  let high = hashes.length;
  while (low < high) {
    const mid = (low + high + 1) >>> 1;
    if (table.holds(hashes[mid - 1]!)) low = mid;
    else high = mid - 1;
  }
  return low;
}
