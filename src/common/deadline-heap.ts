import { MAX_TIMER_MS } from './validate.js';
import { monotonicNow } from './clock.js';

/**
 * Expires calls at their deadlines with one timer per connection instead of one per call.
 *
 * A per-call setTimeout cost about 15% of throughput in bench:unary (a Timeout object, a timer
 * list insert and an unlink per call, on both sides). Here a call costs two numbers pushed on a
 * binary min-heap; the one timer is re-armed only when a new deadline is earlier than the armed
 * one, which with a connection's usual uniform timeout almost never happens. Settled calls are
 * not removed (that would need an indexed heap); they are skipped when they surface, and the
 * heap is rebuilt from the live calls once stale entries outnumber them, so memory stays
 * proportional to the calls in flight.
 */
export class DeadlineHeap {
  readonly #deadlines: number[] = [];
  readonly #ids: number[] = [];
  readonly #deadlineOf: (id: number) => number | undefined;
  readonly #live: () => Iterable<readonly [number, number]>;
  readonly #liveCount: () => number;
  readonly #expire: (id: number) => void;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;

  /**
   * @param deadlineOf the deadline of call `id` if it is still pending, else undefined
   * @param live every pending call with a deadline, as [id, deadline]
   * @param liveCount how many calls are pending
   * @param expire called once per call whose deadline passed while it was pending
   */
  constructor(options: {
    deadlineOf: (id: number) => number | undefined;
    live: () => Iterable<readonly [number, number]>;
    liveCount: () => number;
    expire: (id: number) => void;
  }) {
    this.#deadlineOf = options.deadlineOf;
    this.#live = options.live;
    this.#liveCount = options.liveCount;
    this.#expire = options.expire;
  }

  /** Entries held, stale ones included (for tests of the compaction bound). */
  get size(): number {
    return this.#ids.length;
  }

  /** Schedules call `id` to expire at `deadline` (a `monotonicNow()` time). */
  add(id: number, deadline: number): void {
    if (this.#ids.length > 2 * this.#liveCount() + 64) this.#rebuild();
    this.#push(id, deadline);
    if (deadline < this.#armedFor) this.#arm(deadline);
  }

  /** Cancels the timer; pending entries are forgotten. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
    this.#ids.length = 0;
    this.#deadlines.length = 0;
  }

  #arm(deadline: number): void {
    clearTimeout(this.#timer);
    this.#armedFor = deadline;
    this.#timer = setTimeout(() => this.#fire(), Math.min(Math.max(0, deadline - monotonicNow()), MAX_TIMER_MS));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = monotonicNow();
    while (this.#ids.length > 0 && this.#deadlines[0]! <= now) {
      const id = this.#ids[0]!;
      const deadline = this.#deadlines[0]!;
      this.#pop();
      // Skip entries of settled calls (and of an id that was reused with another deadline).
      if (this.#deadlineOf(id) === deadline) this.#expire(id);
    }
    if (this.#ids.length > 0) this.#arm(this.#deadlines[0]!);
  }

  #rebuild(): void {
    this.#ids.length = 0;
    this.#deadlines.length = 0;
    for (const [id, deadline] of this.#live()) this.#push(id, deadline);
  }

  #push(id: number, deadline: number): void {
    const ids = this.#ids;
    const deadlines = this.#deadlines;
    let index = ids.length;
    ids.push(id);
    deadlines.push(deadline);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (deadlines[parent]! <= deadline) break;
      ids[index] = ids[parent]!;
      deadlines[index] = deadlines[parent]!;
      index = parent;
    }
    ids[index] = id;
    deadlines[index] = deadline;
  }

  #pop(): void {
    const ids = this.#ids;
    const deadlines = this.#deadlines;
    const lastId = ids.pop()!;
    const lastDeadline = deadlines.pop()!;
    const size = ids.length;
    if (size === 0) return;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && deadlines[right]! < deadlines[left]! ? right : left;
      if (deadlines[child]! >= lastDeadline) break;
      ids[index] = ids[child]!;
      deadlines[index] = deadlines[child]!;
      index = child;
    }
    ids[index] = lastId;
    deadlines[index] = lastDeadline;
  }
}

/** The `[id, deadline]` of every entry of `calls` that has a deadline: {@link DeadlineHeap}'s `live`. */
export function* liveDeadlines(calls: ReadonlyMap<number, { readonly deadline: number | undefined }>): Iterable<readonly [number, number]> {
  for (const [id, call] of calls) if (call.deadline !== undefined) yield [id, call.deadline];
}
