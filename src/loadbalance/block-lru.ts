/**
 * A least-recently-used set of 30-bit hashes in typed arrays: a pool of list nodes (hash,
 * previous, next) and an open-addressing table (linear probing, backward-shift deletion) from
 * hash to node. `touch` and `has` are O(1) and allocate nothing, so a large set neither churns
 * the garbage collector nor stalls on a rehash, as a JS Map at tens of thousands of entries
 * does. The pool grows by doubling up to `capacity`, so memory follows use.
 */
export class BlockLru {
  readonly capacity: number;
  #hashes: Int32Array;
  #prev: Int32Array;
  #next: Int32Array;
  /** Most and least recently used nodes, -1 when empty. */
  #head = -1;
  #tail = -1;
  #size = 0;
  /** node index + 1 per cell, 0 for an empty cell. */
  #table: Int32Array;
  #mask: number;

  constructor(capacity: number, initial = 1024) {
    this.capacity = Math.max(1, Math.floor(capacity));
    const nodes = Math.min(this.capacity, initial);
    this.#hashes = new Int32Array(nodes);
    this.#prev = new Int32Array(nodes);
    this.#next = new Int32Array(nodes);
    this.#table = new Int32Array(tableSize(nodes));
    this.#mask = this.#table.length - 1;
  }

  /** Hashes held. */
  get size(): number {
    return this.#size;
  }

  has(hash: number): boolean {
    return this.#find(hash) >= 0;
  }

  /** Makes `hash` the most recently used, inserting it (and evicting the least recent) if needed. */
  touch(hash: number): void {
    const cell = this.#find(hash);
    if (cell >= 0) {
      const node = this.#table[cell]! - 1;
      if (node !== this.#head) {
        this.#unlink(node);
        this.#pushFront(node);
      }
      return;
    }
    let node: number;
    if (this.#size < this.#hashes.length) {
      node = this.#size++;
    } else if (this.#hashes.length < this.capacity) {
      this.#grow();
      node = this.#size++;
    } else {
      node = this.#tail;
      this.#unlink(node);
      this.#deleteCell(this.#find(this.#hashes[node]!));
    }
    this.#hashes[node] = hash;
    this.#pushFront(node);
    let free = hash & this.#mask;
    while (this.#table[free] !== 0) free = (free + 1) & this.#mask;
    this.#table[free] = node + 1;
  }

  #find(hash: number): number {
    let cell = hash & this.#mask;
    for (;;) {
      const entry = this.#table[cell]!;
      if (entry === 0) return -1;
      if (this.#hashes[entry - 1] === hash) return cell;
      cell = (cell + 1) & this.#mask;
    }
  }

  #unlink(node: number): void {
    const prev = this.#prev[node]!;
    const next = this.#next[node]!;
    if (prev >= 0) this.#next[prev] = next;
    else this.#head = next;
    if (next >= 0) this.#prev[next] = prev;
    else this.#tail = prev;
  }

  #pushFront(node: number): void {
    this.#prev[node] = -1;
    this.#next[node] = this.#head;
    if (this.#head >= 0) this.#prev[this.#head] = node;
    this.#head = node;
    if (this.#tail < 0) this.#tail = node;
  }

  /** Empties `cell`, moving later entries of its probe run back so lookups still find them. */
  #deleteCell(cell: number): void {
    const table = this.#table;
    const mask = this.#mask;
    let hole = cell;
    let probe = cell;
    for (;;) {
      probe = (probe + 1) & mask;
      const entry = table[probe]!;
      if (entry === 0) break;
      const home = this.#hashes[entry - 1]! & mask;
      // The entry may move into the hole unless its home lies cyclically in (hole, probe].
      const stays = hole <= probe ? home > hole && home <= probe : home > hole || home <= probe;
      if (!stays) {
        table[hole] = entry;
        hole = probe;
      }
    }
    table[hole] = 0;
  }

  /** Doubles the node pool (up to capacity) and rebuilds the table; list order is kept. */
  #grow(): void {
    const length = Math.min(this.capacity, this.#hashes.length * 2);
    const copy = (from: Int32Array): Int32Array => {
      const to = new Int32Array(length);
      to.set(from);
      return to;
    };
    this.#hashes = copy(this.#hashes);
    this.#prev = copy(this.#prev);
    this.#next = copy(this.#next);
    this.#table = new Int32Array(tableSize(length));
    this.#mask = this.#table.length - 1;
    for (let node = 0; node < this.#size; node++) {
      let free = this.#hashes[node]! & this.#mask;
      while (this.#table[free] !== 0) free = (free + 1) & this.#mask;
      this.#table[free] = node + 1;
    }
  }
}

function tableSize(entries: number): number {
  let size = 16;
  while (size < entries * 2) size *= 2;
  return size;
}
