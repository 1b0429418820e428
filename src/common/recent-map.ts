/**
 * A cache of at most `2 × limit` entries that keeps the ones in use: for values made from names a
 * caller chooses (a proxy takes any property name as a method name), where one entry per name
 * ever seen would grow for as long as the process runs.
 *
 * Entries live in two generations. New ones go into the current one; when it holds `limit`, it
 * becomes the previous one and the one before it is dropped. An entry found in the previous
 * generation moves back into the current one, so an entry used at least once per `limit` new
 * names is never dropped (and keeps its identity), and a hit in the current generation costs
 * one map lookup, as a plain map's does. An LRU would reorder its list on every hit.
 */
export class RecentMap<K, V> {
  readonly #limit: number;
  #current = new Map<K, V>();
  #previous = new Map<K, V>();

  /** @param limit entries per generation (at least 1) */
  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /** Entries held, both generations. */
  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  /** The value for `key`, moved into the current generation; undefined when it is not held. */
  get(key: K): V | undefined {
    const value = this.#current.get(key);
    if (value !== undefined || this.#previous.size === 0) return value;
    const old = this.#previous.get(key);
    if (old !== undefined) {
      this.#previous.delete(key);
      this.set(key, old);
    }
    return old;
  }

  /** Holds `value` for `key` in the current generation, turning it over first when it is full. */
  set(key: K, value: V): void {
    if (this.#current.size >= this.#limit && !this.#current.has(key)) {
      this.#previous = this.#current;
      this.#current = new Map();
    }
    this.#current.set(key, value);
  }
}
