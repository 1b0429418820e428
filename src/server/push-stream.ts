import { checkInt, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';

/** Options of a {@link PushStream}. */
export interface PushStreamOptions {
  /** `push()` answers false once this many values wait unread (default 64): wait for `ready()`. */
  readonly highWaterMark?: number;
  /**
   * The most values that may wait unread (default 4096). A producer that pushes past it ignored
   * the backpressure; the stream then fails with RESOURCE_EXHAUSTED and takes no more values.
   */
  readonly maxBuffered?: number;
}

const DEFAULT_HIGH_WATER_MARK = 64;
const DEFAULT_MAX_BUFFERED = 4096;

/**
 * A server stream fed by pushing values into it, for producers that make values for many
 * streams at once, as an inference engine does at every batch step: return it from a
 * `stream: true` method instead of writing an async generator. It is an async iterable like a
 * generator (the transports pull from it the same way, with the same flow control), but a value
 * costs a queue entry and no generator resumption, which is about half a provider's CPU per
 * token when ten thousand streams are running.
 *
 * The producer calls `push(value)` for each value, then `end(returnValue)` (the call's trailer)
 * or `fail(error)`; values pushed before either are delivered first. `push` answers false when
 * the reader is behind by `highWaterMark` values; the producer should then wait for `ready()`.
 * The stream closes once it is over for good: read to its end, failed, or left by its reader
 * (the caller cancels, the deadline passes, the connection drops). Then `closed` turns true,
 * the `onClose` callbacks run once and further values are dropped, so a producer can free what
 * the stream held.
 */
export class PushStream<T, TReturn = undefined> implements AsyncIterableIterator<T, TReturn | undefined> {
  readonly #highWaterMark: number;
  readonly #maxBuffered: number;
  /** Values not yet read; `#head` is the index of the next one (shifted out in batches). */
  #queue: T[] = [];
  #head = 0;
  /** The reader waiting for a value, if it asked while the queue was empty. */
  #waiting: ((result: IteratorResult<T, TReturn | undefined>) => void) | undefined;
  #failWaiting: ((error: unknown) => void) | undefined;
  /** Producers waiting for room. */
  #ready: (() => void)[] = [];
  #ending: { value: TReturn | undefined } | undefined;
  #error: { error: unknown } | undefined;
  #closed = false;
  #onClose: (() => void)[] = [];

  constructor(options: PushStreamOptions = {}) {
    checkKnownKeys('push stream options', options, ['highWaterMark', 'maxBuffered']);
    this.#highWaterMark = checkInt('push stream highWaterMark', options.highWaterMark, 1, 1_000_000, DEFAULT_HIGH_WATER_MARK);
    this.#maxBuffered = checkInt(
      'push stream maxBuffered',
      options.maxBuffered,
      this.#highWaterMark,
      10_000_000,
      Math.max(this.#highWaterMark, DEFAULT_MAX_BUFFERED),
    );
  }

  /** Values waiting to be read. */
  get buffered(): number {
    return this.#queue.length - this.#head;
  }

  /** True once the reader has gone or the stream has failed: values pushed now are dropped. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues a value for the reader; true while fewer than `highWaterMark` wait. Ignored (false)
   * once the stream is closed. Throws when called after `end()` or `fail()`, a producer bug.
   */
  push(value: T): boolean {
    if (this.#closed) return false;
    if (this.#ending !== undefined || this.#error !== undefined) {
      throw new RpcError(RpcCode.INTERNAL, 'a value was pushed into a stream after its end() or fail()');
    }
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      this.#failWaiting = undefined;
      waiting({ value, done: false });
      return true;
    }
    if (this.buffered >= this.#maxBuffered) {
      this.#close(
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `a push stream's producer ignored backpressure: ${this.buffered} values wait unread (maxBuffered ${this.#maxBuffered})`,
        ),
      );
      return false;
    }
    this.#queue.push(value);
    return this.buffered < this.#highWaterMark;
  }

  /** Resolves when `push` would answer true again, or the stream has closed. */
  ready(): Promise<void> {
    if (this.#closed || this.buffered < this.#highWaterMark) return Promise.resolve();
    return new Promise((resolve) => this.#ready.push(resolve));
  }

  /** Ends the stream once the values already pushed are read; `value` is the call's trailer. */
  end(value?: TReturn): void {
    if (this.#closed || this.#ending !== undefined || this.#error !== undefined) return;
    this.#ending = { value };
    this.#settleWaiting();
  }

  /** Fails the stream with `error` once the values already pushed are read. */
  fail(error: unknown): void {
    if (this.#closed || this.#ending !== undefined || this.#error !== undefined) return;
    this.#error = { error };
    this.#settleWaiting();
  }

  /** Runs `callback` once when the stream closes (read to its end, failed, or left by its reader); at once if it has. */
  onClose(callback: () => void): void {
    if (this.#closed) callback();
    else this.#onClose.push(callback);
  }

  next(): Promise<IteratorResult<T, TReturn | undefined>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head++]!;
      // Shift out read values in batches: an array shift per value would copy the queue.
      if (this.#head >= 1024 || this.#head === this.#queue.length) {
        this.#queue = this.#head === this.#queue.length ? [] : this.#queue.slice(this.#head);
        this.#head = 0;
      }
      if (this.#ready.length > 0 && this.buffered < this.#highWaterMark) this.#wakeProducers();
      return Promise.resolve({ value, done: false });
    }
    if (this.#error !== undefined) {
      const { error } = this.#error;
      this.#close(undefined);
      return Promise.reject(error);
    }
    if (this.#ending !== undefined || this.#closed) {
      const value = this.#ending?.value;
      this.#close(undefined);
      return Promise.resolve({ value, done: true });
    }
    if (this.#waiting !== undefined) return Promise.reject(new TypeError('PushStream: next() called again before the previous value arrived'));
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#failWaiting = reject;
    });
  }

  /** The reader stops early: the stream closes and the producer is told. */
  return(value?: TReturn): Promise<IteratorResult<T, TReturn | undefined>> {
    this.#close(undefined);
    return Promise.resolve({ value, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #settleWaiting(): void {
    const waiting = this.#waiting;
    const failWaiting = this.#failWaiting;
    if (waiting === undefined) return;
    this.#waiting = undefined;
    this.#failWaiting = undefined;
    if (this.#error !== undefined) {
      const { error } = this.#error;
      this.#close(undefined);
      failWaiting!(error);
    } else {
      const value = this.#ending?.value;
      this.#close(undefined);
      waiting({ value, done: true });
    }
  }

  /** Closes once: drops what is queued, tells the producer, fails a waiting reader with `error`. */
  #close(error: RpcError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    if (error !== undefined) {
      this.#error ??= { error };
      const failWaiting = this.#failWaiting;
      this.#waiting = undefined;
      this.#failWaiting = undefined;
      failWaiting?.(error);
    }
    this.#wakeProducers();
    const callbacks = this.#onClose;
    this.#onClose = [];
    for (const callback of callbacks) {
      try {
        callback();
      } catch {
        // A producer's cleanup bug must not break the reader's end of the stream.
      }
    }
  }

  #wakeProducers(): void {
    const ready = this.#ready;
    this.#ready = [];
    for (const resolve of ready) resolve();
  }
}
