/**
 * An approximate record of which prefix blocks each provider probably holds in its KV cache:
 * the blocks of the prompts recently routed to it, at most its capacity (its advertised KV
 * capacity in blocks), least recently routed blocks going first, so memory is bounded by the
 * sum of the providers' capacities.
 *
 * The blocks live in one radix tree shared by every provider, as SGLang's router keeps them:
 * a node is a run of consecutive chain hashes that recorded prompts share, and a provider's
 * share of a node is a {@link Hold} of its first n blocks. A prompt of 256 blocks made of a
 * popular system prompt and a unique question is two nodes, so recording it moves two holds
 * to the front of the provider's recency list, and matching it is one walk down the tree that
 * reads the holds it passes. A flat set of blocks per provider would take a probe per provider
 * per decision and one per block recorded, mostly cache misses across tens of megabytes of
 * tables (bench:lb, 64 providers and 16 KiB prompts: about 85 µs a decision, the tree under 10).
 *
 * What a provider holds stays prefix-closed (holding a block means holding every block before
 * it): a prompt is recorded whole, deepest node first, so a node is never more recent than its
 * parent and the provider's least recent hold is always one of its leaves. Evicting from the
 * end of that leaf is exactly what a per-block LRU does when a prompt's blocks are touched last
 * to first.
 */
export class PrefixIndex {
  readonly #root = new Node([], undefined);
  readonly #holders = new Map<string, Holder>();
  /** Bumped on every change, so a cached lookup knows when it is out of date. */
  #version = 0;
  #lookedUp: readonly number[] | undefined;
  #lookedUpVersion = -1;
  #epoch = 0;
  readonly #path: Node[] = [];
  /**
   * The candidates of the last {@link matchEach}, by position, and their holders: a client
   * passes the same provider objects call after call, so an identity check replaces a map
   * lookup per candidate. Cleared whenever a holder comes or goes.
   */
  readonly #seen: Array<{ readonly address: string }> = [];
  readonly #seenHolders: Array<Holder | undefined> = [];
  readonly #matches: number[] = [];

  /** Blocks held for `address` right now. */
  size(address: string): number {
    return this.#holders.get(address)?.size ?? 0;
  }

  /** Total entries, over all providers. */
  get totalBlocks(): number {
    let total = 0;
    for (const holder of this.#holders.values()) total += holder.size;
    return total;
  }

  /** How many leading blocks of `hashes` `address` (probably) holds. */
  matchOne(address: string, hashes: readonly number[]): number {
    const holder = this.#holders.get(address);
    if (holder === undefined) return 0;
    let node = this.#root;
    let at = 0;
    while (at < hashes.length) {
      const child = node.children?.get(hashes[at]!);
      if (child === undefined) break;
      const hold = child.holdOf(holder);
      if (hold === undefined) break;
      const common = child.commonPrefix(hashes, at);
      const held = Math.min(common, hold.blocks);
      at += held;
      if (held < child.labels.length) break;
      node = child;
    }
    return at;
  }

  /**
   * How many leading blocks of `hashes` `address` (probably) holds, as {@link matchOne}, but
   * one walk of the tree answers for every provider: asking for each candidate of a decision
   * in turn costs one walk plus a map lookup each. `hashes` must not change between calls.
   */
  matched(address: string, hashes: readonly number[]): number {
    if (hashes !== this.#lookedUp || this.#lookedUpVersion !== this.#version) this.#lookUp(hashes);
    const holder = this.#holders.get(address);
    return holder !== undefined && holder.epoch === this.#epoch ? holder.matched : 0;
  }

  /**
   * {@link matched} for each of `providers`, at the same positions, in an array that is valid
   * until the next call. One walk of the tree answers for all of them.
   */
  matchEach(hashes: readonly number[], providers: readonly { readonly address: string }[]): readonly number[] {
    if (hashes !== this.#lookedUp || this.#lookedUpVersion !== this.#version) this.#lookUp(hashes);
    const epoch = this.#epoch;
    const seen = this.#seen;
    const holders = this.#seenHolders;
    const matches = this.#matches;
    matches.length = providers.length;
    for (let i = 0; i < providers.length; i++) {
      const provider = providers[i]!;
      if (seen[i] !== provider) {
        seen[i] = provider;
        holders[i] = this.#holders.get(provider.address);
      }
      const holder = holders[i];
      matches[i] = holder !== undefined && holder.epoch === epoch ? holder.matched : 0;
    }
    return matches;
  }

  /** For each address in `candidates`, how many leading blocks of `hashes` it holds (0s omitted). */
  match(hashes: readonly number[], candidates: Iterable<string>): Map<string, number> {
    const matched = new Map<string, number>();
    for (const address of candidates) {
      const blocks = this.matched(address, hashes);
      if (blocks > 0) matched.set(address, blocks);
    }
    return matched;
  }

  /**
   * Records that `address` now holds `hashes`, keeping at most `capacity` blocks for it. The
   * prompt's first blocks — the ones other prompts share — become the most recent and the
   * last to go; blocks beyond the capacity go first.
   */
  record(address: string, hashes: readonly number[], capacity: number): void {
    this.#version++;
    const blocks = Math.max(1, Math.floor(capacity));
    let holder = this.#holders.get(address);
    if (holder === undefined || holder.capacity !== blocks) {
      if (holder !== undefined) this.#dropAll(holder);
      holder = new Holder(blocks);
      this.#holders.set(address, holder);
      this.#forgetSeen();
    }
    const path = this.#pathFor(hashes);
    for (let i = path.length - 1; i >= 0; i--) holder.touch(path[i]!);
    path.length = 0;
    while (holder.size > holder.capacity) this.#evictTail(holder, holder.size - holder.capacity);
  }

  /** Forgets every provider not in `live` (it left the registry). */
  retainOnly(live: ReadonlySet<string>): void {
    for (const [address, holder] of this.#holders) {
      if (live.has(address)) continue;
      this.#dropAll(holder);
      this.#holders.delete(address);
    }
    this.#version++;
    this.#forgetSeen();
  }

  #forgetSeen(): void {
    this.#seen.length = 0;
    this.#seenHolders.length = 0;
  }

  /** One walk down the tree, leaving each holder on the path its matched length. */
  #lookUp(hashes: readonly number[]): void {
    this.#lookedUp = hashes;
    this.#lookedUpVersion = this.#version;
    const epoch = ++this.#epoch;
    let node = this.#root;
    let at = 0;
    while (at < hashes.length) {
      const child = node.children?.get(hashes[at]!);
      if (child === undefined) break;
      const common = child.commonPrefix(hashes, at);
      // Deeper nodes come later and overwrite: a holder of a child holds its parent whole.
      for (const hold of child.holds) {
        hold.holder.epoch = epoch;
        hold.holder.matched = at + Math.min(common, hold.blocks);
      }
      if (common < child.labels.length) break;
      at += common;
      node = child;
    }
  }

  /** The nodes that spell `hashes` from the root, split and added as needed. */
  #pathFor(hashes: readonly number[]): Node[] {
    const path = this.#path;
    let node = this.#root;
    let at = 0;
    while (at < hashes.length) {
      let child = node.children?.get(hashes[at]!);
      if (child === undefined) {
        child = new Node(hashes.slice(at), node);
        (node.children ??= new Map()).set(hashes[at]!, child);
        path.push(child);
        break;
      }
      const common = child.commonPrefix(hashes, at);
      if (common < child.labels.length) child.split(common);
      path.push(child);
      at += common;
      node = child;
    }
    return path;
  }

  /** Takes up to `excess` blocks from the end of `holder`'s least recent hold. */
  #evictTail(holder: Holder, excess: number): void {
    const hold = holder.tail!;
    const cut = Math.min(excess, hold.blocks);
    hold.blocks -= cut;
    holder.size -= cut;
    if (hold.blocks === 0) this.#release(hold);
    else hold.node.trim();
  }

  /** Removes every hold of `holder`, leaves first. */
  #dropAll(holder: Holder): void {
    while (holder.tail !== undefined) {
      const hold = holder.tail;
      holder.size -= hold.blocks;
      hold.blocks = 0;
      this.#release(hold);
    }
  }

  /** Unlinks an emptied hold; a node nobody holds leaves the tree (it has no children then). */
  #release(hold: Hold): void {
    hold.holder.unlink(hold);
    const node = hold.node;
    node.removeHold(hold);
    if (node.holds.length > 0) {
      node.trim();
      return;
    }
    const parent = node.parent!;
    parent.children!.delete(node.labels[0]!);
    if (parent.children!.size === 0) parent.children = undefined;
  }
}

/** A run of blocks in the tree, and the providers holding some of it. */
class Node {
  children: Map<number, Node> | undefined;
  readonly holds: Hold[] = [];

  constructor(
    /** The run's chain hashes; never shared with another node or the caller. */
    public labels: number[],
    public parent: Node | undefined,
  ) {}

  /**
   * How many of this run's blocks equal `hashes` from `at` on, given that the first does. Chain
   * hashes name whole prefixes, so a block that matches means every block before it matches
   * too: one comparison settles a run followed to its end, a binary search finds where a
   * prompt leaves it, instead of a comparison per block (a 30-bit collision can fool it, at the
   * price of a cache miss, as it can fool any lookup by hash).
   */
  commonPrefix(hashes: readonly number[], at: number): number {
    const labels = this.labels;
    const limit = Math.min(labels.length, hashes.length - at);
    if (labels[limit - 1] === hashes[at + limit - 1]) return limit;
    // Largest n with labels[n - 1] matching; labels[0] does, labels[limit - 1] does not.
    let low = 1;
    let high = limit - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (labels[middle - 1] === hashes[at + middle - 1]) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  holdOf(holder: Holder): Hold | undefined {
    for (const hold of this.holds) if (hold.holder === holder) return hold;
    return undefined;
  }

  removeHold(hold: Hold): void {
    const index = this.holds.indexOf(hold);
    const last = this.holds.pop()!;
    if (last !== hold) this.holds[index] = last;
  }

  /**
   * Keeps the first `blocks` of the run here and moves the rest, with the children, to a new
   * child. A hold reaching past the cut gets a second hold on the child, placed right behind
   * the first in its holder's recency list (deeper is less recent).
   */
  split(blocks: number): void {
    const lower = new Node(this.labels.slice(blocks), this);
    this.labels.length = blocks;
    lower.children = this.children;
    if (lower.children !== undefined) for (const child of lower.children.values()) child.parent = lower;
    this.children = new Map([[lower.labels[0]!, lower]]);
    for (const hold of this.holds) {
      if (hold.blocks <= blocks) continue;
      const rest = new Hold(lower, hold.holder, hold.blocks - blocks);
      hold.blocks = blocks;
      lower.holds.push(rest);
      hold.holder.insertAfter(hold, rest);
    }
  }

  /** Drops the tail of the run that no holder holds any more (only a leaf can have one). */
  trim(): void {
    let longest = 0;
    for (const hold of this.holds) if (hold.blocks > longest) longest = hold.blocks;
    if (longest < this.labels.length) this.labels.length = longest;
  }
}

/** One provider's share of the tree: its holds, most recent first, and what it may keep. */
class Holder {
  size = 0;
  head: Hold | undefined;
  tail: Hold | undefined;
  /** The last lookup that passed one of its holds, and the blocks it matched there. */
  epoch = 0;
  matched = 0;

  constructor(readonly capacity: number) {}

  /** Makes this holder hold all of `node`, as its most recent hold. */
  touch(node: Node): void {
    let hold = node.holdOf(this);
    if (hold === undefined) {
      hold = new Hold(node, this, 0);
      node.holds.push(hold);
    } else {
      if (hold === this.head) {
        this.size += node.labels.length - hold.blocks;
        hold.blocks = node.labels.length;
        return;
      }
      this.unlink(hold);
    }
    this.size += node.labels.length - hold.blocks;
    hold.blocks = node.labels.length;
    hold.next = this.head;
    if (this.head !== undefined) this.head.prev = hold;
    this.head = hold;
    this.tail ??= hold;
  }

  insertAfter(anchor: Hold, hold: Hold): void {
    hold.prev = anchor;
    hold.next = anchor.next;
    if (anchor.next !== undefined) anchor.next.prev = hold;
    else this.tail = hold;
    anchor.next = hold;
  }

  unlink(hold: Hold): void {
    if (hold.prev !== undefined) hold.prev.next = hold.next;
    else this.head = hold.next;
    if (hold.next !== undefined) hold.next.prev = hold.prev;
    else this.tail = hold.prev;
    hold.prev = undefined;
    hold.next = undefined;
  }
}

/** That one provider holds the first `blocks` blocks of a node; an entry of its recency list. */
class Hold {
  prev: Hold | undefined;
  next: Hold | undefined;

  constructor(
    readonly node: Node,
    readonly holder: Holder,
    public blocks: number,
  ) {}
}
