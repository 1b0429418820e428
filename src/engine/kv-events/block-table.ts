import { fmix } from '../../loadbalance/hash.js';
import type { KvEvent } from './decode.js';

/**
 * Which token blocks an engine's KV cache holds, rebuilt from its events.
 *
 * The engine names a block by its own hash, which cannot be computed here (vLLM's is a seeded
 * sha256 of its own serialisation). So each block is also given a hash of ours — the chain of
 * its tokens and its parent's hash of ours ({@link tokenBlockHash}) — which a prompt's token ids
 * give too. The table maps the engine's hash to ours, and counts ours held (one block of ours
 * can be held twice: in two tiers, or stored twice under two engine hashes).
 *
 * A block whose parent the table does not know (its events were missed or dropped) cannot be
 * chained, and is left out: a prefix is only ever claimed from its first block. Bounded by
 * `maxBlocks`: past it the oldest-stored block is forgotten, which under-claims and so costs at
 * most a cache hit the router did not count on.
 */
export class BlockTable {
  readonly #maxBlocks: number;
  /** Engine hash key → our chain hash. */
  readonly #blocks = new Map<number, number>();
  /**
   * Engine hash keys in the order stored, from `#head` on; removed blocks stay until they reach
   * the head or the queue is compacted. Eviction takes from here, not from the map's first key:
   * V8 walks a map's deleted entries to reach its first live one, so evicting that way costs
   * more with every eviction (tens of seconds a block once a full table had turned over).
   */
  #order: number[] = [];
  #head = 0;
  /** Our chain hash → how many engine blocks hold it. */
  readonly #held = new Map<number, number>();
  /** Tokens per block, from the first BlockStored event since the table was last emptied; 0 until then. */
  blockSize = 0;
  /** Times a BlockStored came with another block size, which empties the table (a different engine). */
  blockSizeChanges = 0;
  /** Bumped on every change, so a summary built from the table knows when it is stale. */
  version = 0;
  /** Blocks whose parent was unknown, so that were not chained. */
  orphans = 0;

  constructor(maxBlocks: number) {
    this.#maxBlocks = maxBlocks;
  }

  /** Blocks held. */
  get size(): number {
    return this.#blocks.size;
  }

  /** Whether a block of ours (a {@link tokenBlockHash}) is in the engine's cache. */
  holds(ours: number): boolean {
    return this.#held.has(ours);
  }

  /**
   * Applies one event. A BlockStored whose block size differs from the one seen before empties
   * the table first: one engine has one block size, so this is another engine at the address
   * (restarted with a new `--block-size`), whose cache starts empty.
   */
  apply(event: KvEvent): void {
    this.version++;
    if (event.type === 'cleared') {
      this.clear();
      return;
    }
    if (event.type === 'removed') {
      for (const hash of event.hashes) this.#forget(hash);
      return;
    }
    if (event.blockSize !== this.blockSize) {
      if (this.blockSize !== 0) {
        this.clear();
        this.blockSizeChanges++;
      }
      this.blockSize = event.blockSize;
    }
    let parent: number | undefined = event.parent === undefined ? chainSeed(event.loraId) : this.#blocks.get(event.parent);
    if (parent === undefined) {
      this.orphans += event.hashes.length;
      return;
    }
    for (let i = 0; i < event.hashes.length; i++) {
      const ours = tokenBlockHash(event.tokenIds, i * event.blockSize, (i + 1) * event.blockSize, parent);
      this.#remember(event.hashes[i]!, ours);
      parent = ours;
    }
  }

  /** Forgets every block and the block size (the engine cleared its cache or restarted). */
  clear(): void {
    this.#blocks.clear();
    this.#held.clear();
    this.#order = [];
    this.#head = 0;
    this.blockSize = 0;
    this.version++;
  }

  #remember(engineHash: number, ours: number): void {
    if (this.#blocks.has(engineHash)) this.#forget(engineHash);
    else if (this.#blocks.size >= this.#maxBlocks) this.#evictOldest();
    this.#blocks.set(engineHash, ours);
    this.#held.set(ours, (this.#held.get(ours) ?? 0) + 1);
    this.#order.push(engineHash);
    if (this.#order.length - this.#head > 2 * this.#maxBlocks + 1024) this.#compact();
  }

  /**
   * Forgets the block stored longest ago. A key re-stored after it was removed is in the queue
   * twice, and goes at its first place: an under-claim, never an over-claim.
   */
  #evictOldest(): void {
    while (this.#head < this.#order.length) {
      const key = this.#order[this.#head++]!;
      if (this.#blocks.has(key)) {
        this.#forget(key);
        break;
      }
    }
    if (this.#head > 4096 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Rebuilds the queue from the blocks held, in the order they were (last) stored. */
  #compact(): void {
    this.#order = [...this.#blocks.keys()];
    this.#head = 0;
  }

  #forget(engineHash: number): void {
    const ours = this.#blocks.get(engineHash);
    if (ours === undefined) return;
    this.#blocks.delete(engineHash);
    const count = this.#held.get(ours)!;
    if (count <= 1) this.#held.delete(ours);
    else this.#held.set(ours, count - 1);
  }
}

/** The chain hash a prompt's first block continues: 1 for the base model, else the adapter's. */
export function chainSeed(loraId: number | undefined): number {
  return loraId === undefined ? 1 : 2 + (fmix(loraId >>> 0) & 0xfffffff);
}

/**
 * Our 53-bit hash of the token block `tokens[from, to)` chained after the block hashed `parent`:
 * two 32-bit FNV-style lanes over the token ids, seeded by the parent, with the murmur3
 * finaliser on the way out. Equal hashes mean equal token prefixes (up to one false match in
 * about 2^53 pairs).
 */
export function tokenBlockHash(tokens: ArrayLike<number>, from: number, to: number, parent: number): number {
  let a = (0x811c9dc5 ^ parent) >>> 0;
  let b = (0x2f1a5b3c ^ Math.floor(parent / 0x100000000)) >>> 0;
  for (let i = from; i < to; i++) {
    const token = tokens[i]! >>> 0;
    a = Math.imul(a ^ token, 0x01000193);
    b = Math.imul(b ^ token, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = fmix(a);
  b = fmix((b ^ a) >>> 0);
  return (b & 0x1fffff) * 0x100000000 + a;
}
