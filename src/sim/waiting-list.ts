/** What the waiting list needs of a sequence: its priority and its place in arrival order. */
export interface Queued {
  /** Higher runs first. */
  readonly priority: number;
  /** Arrival order: lower arrived earlier. */
  readonly order: number;
}

/**
 * The engine's waiting sequences in the order it admits them: by priority (higher first), then
 * by arrival. A sequence preempted back into the list keeps its arrival order, so it goes back
 * ahead of the later arrivals of its priority (as vLLM's priority queue orders it). With every
 * priority equal this is plain first come, first served.
 */
export class WaitingList<T extends Queued> implements Iterable<T> {
  readonly #items: T[] = [];

  get length(): number {
    return this.#items.length;
  }

  /** The next sequence to admit. */
  head(): T | undefined {
    return this.#items[0];
  }

  shift(): T | undefined {
    return this.#items.shift();
  }

  /**
   * Puts `item` at its place. The search runs from the tail because almost every insertion is
   * a new arrival of the lowest priority waiting, which belongs at the end.
   */
  insert(item: T): void {
    let at = this.#items.length;
    while (at > 0 && before(item, this.#items[at - 1]!)) at--;
    this.#items.splice(at, 0, item);
  }

  /** Removes every item for which `leave` returns true, calling it once per item. */
  removeWhere(leave: (item: T) => boolean): void {
    for (let i = this.#items.length - 1; i >= 0; i--) if (leave(this.#items[i]!)) this.#items.splice(i, 1);
  }

  [Symbol.iterator](): Iterator<T> {
    return this.#items[Symbol.iterator]();
  }
}

/** Whether `a` is admitted before `b`. */
export function before(a: Queued, b: Queued): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.order < b.order;
}
