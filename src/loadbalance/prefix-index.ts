import { BlockLru } from './block-lru.js';

/**
 * An approximate record of which prefix blocks each provider probably holds in its KV cache:
 * the blocks of the prompts recently routed to it, at most its capacity (its advertised KV
 * capacity in blocks), so memory is bounded by the sum of the providers' capacities.
 *
 * Each provider's share is a {@link BlockLru}: least recently routed blocks go first, in O(1)
 * with no allocation.
 *
 * Matching relies on blocks being prefix-closed (holding block i means holding every block
 * before it — prompts are recorded whole and their shared early blocks are hit most), so a
 * provider's longest cached prefix is found by binary search: about log2(blocks) lookups.
 */
export class PrefixIndex {
  readonly #providers = new Map<string, BlockLru>();

  /** Blocks held for `address` right now. */
  size(address: string): number {
    return this.#providers.get(address)?.size ?? 0;
  }

  /** Total entries, over all providers. */
  get totalBlocks(): number {
    let total = 0;
    for (const blocks of this.#providers.values()) total += blocks.size;
    return total;
  }

  /** How many leading blocks of `hashes` `address` (probably) holds. */
  matchOne(address: string, hashes: readonly number[]): number {
    const blocks = this.#providers.get(address);
    if (blocks === undefined || hashes.length === 0 || !blocks.has(hashes[0]!)) return 0;
    // Largest n with hashes[0..n) held; invariant: blocks.has(hashes[low - 1]).
    let low = 1;
    let high = hashes.length;
    if (blocks.has(hashes[high - 1]!)) return high;
    high -= 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (blocks.has(hashes[middle - 1]!)) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  /** For each address in `candidates`, how many leading blocks of `hashes` it holds (0s omitted). */
  match(hashes: readonly number[], candidates: Iterable<string>): Map<string, number> {
    const matched = new Map<string, number>();
    for (const address of candidates) {
      const blocks = this.matchOne(address, hashes);
      if (blocks > 0) matched.set(address, blocks);
    }
    return matched;
  }

  /**
   * Records that `address` now holds `hashes`, keeping at most `capacity` blocks for it. The
   * blocks are touched last to first, so a prompt's first blocks — the ones other prompts
   * share — are the most recent and the last to go, which keeps what is held prefix-closed.
   */
  record(address: string, hashes: readonly number[], capacity: number): void {
    let blocks = this.#providers.get(address);
    if (blocks === undefined || blocks.capacity !== Math.max(1, Math.floor(capacity))) {
      blocks = new BlockLru(capacity);
      this.#providers.set(address, blocks);
    }
    for (let i = hashes.length - 1; i >= 0; i--) blocks.touch(hashes[i]!);
  }

  /** Forgets every provider not in `live` (it left the registry). */
  retainOnly(live: ReadonlySet<string>): void {
    for (const address of this.#providers.keys()) if (!live.has(address)) this.#providers.delete(address);
  }
}
