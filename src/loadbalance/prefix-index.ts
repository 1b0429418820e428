/**
 * An approximate record of which prefix blocks each provider probably holds in its KV cache:
 * the blocks of the prompts recently routed to it, forgotten least-recently-used first once a
 * provider's share is full (its advertised KV capacity in blocks), so memory is bounded by the
 * sum of the providers' capacities. One global map from block hash to owners answers "who has
 * this prefix" in one lookup per block.
 */
export class PrefixIndex {
  /** Block hash -> addresses that (probably) hold it. */
  readonly #owners = new Map<number, string[]>();
  /** Address -> its blocks in LRU order (a Map keeps insertion order) and its capacity. */
  readonly #providers = new Map<string, { blocks: Map<number, true>; capacity: number }>();

  /** Blocks held for `address` right now. */
  size(address: string): number {
    return this.#providers.get(address)?.blocks.size ?? 0;
  }

  /** Total entries, over all providers (the memory bound is the sum of capacities). */
  get totalBlocks(): number {
    let total = 0;
    for (const provider of this.#providers.values()) total += provider.blocks.size;
    return total;
  }

  /**
   * For each address in `candidates`, how many leading blocks of `hashes` it holds. The walk
   * stops at the first block no candidate holds, since a longer prefix needs every shorter one.
   */
  match(hashes: readonly number[], candidates: ReadonlySet<string>): Map<string, number> {
    const matched = new Map<string, number>();
    for (let i = 0; i < hashes.length; i++) {
      const owners = this.#owners.get(hashes[i]!);
      if (owners === undefined) break;
      let any = false;
      for (const owner of owners) {
        if (candidates.has(owner) && (i === 0 || matched.get(owner) === i)) {
          matched.set(owner, i + 1);
          any = true;
        }
      }
      if (!any) break;
    }
    return matched;
  }

  /** Records that `address` now holds `hashes` (most recent), evicting its oldest beyond `capacity`. */
  record(address: string, hashes: readonly number[], capacity: number): void {
    let provider = this.#providers.get(address);
    if (provider === undefined) {
      provider = { blocks: new Map(), capacity };
      this.#providers.set(address, provider);
    }
    provider.capacity = capacity;
    const blocks = provider.blocks;
    for (const hash of hashes) {
      if (blocks.delete(hash)) {
        blocks.set(hash, true);
        continue;
      }
      blocks.set(hash, true);
      const owners = this.#owners.get(hash);
      if (owners === undefined) this.#owners.set(hash, [address]);
      else owners.push(address);
    }
    while (blocks.size > provider.capacity) {
      const oldest = blocks.keys().next().value as number;
      blocks.delete(oldest);
      this.#dropOwner(oldest, address);
    }
  }

  /** Forgets every provider not in `live` (it left the registry). */
  retainOnly(live: ReadonlySet<string>): void {
    for (const [address, provider] of this.#providers) {
      if (live.has(address)) continue;
      for (const hash of provider.blocks.keys()) this.#dropOwner(hash, address);
      this.#providers.delete(address);
    }
  }

  #dropOwner(hash: number, address: string): void {
    const owners = this.#owners.get(hash);
    if (owners === undefined) return;
    const index = owners.indexOf(address);
    if (index >= 0) owners.splice(index, 1);
    if (owners.length === 0) this.#owners.delete(hash);
  }
}
