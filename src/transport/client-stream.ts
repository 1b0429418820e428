import { RpcCode, RpcError } from '../errors/errors.js';
import { newPromise, unsettled, type Settlers } from '../common/settlers.js';

/**
 * The consumer's end of a server stream: an AsyncIterable fed by the transport.
 *
 * - Chunks wait in a queue that flow control keeps small: the transport grants the provider
 *   more credit only as the reader takes chunks (`onConsumed`), so a reader that stops reading
 *   stops the provider after one window.
 * - The stream ends only by the provider's explicit end (then `trailer` resolves with the
 *   generator's return value) or with an error — a connection lost mid-stream is UNAVAILABLE,
 *   never a silent end. Chunks already received are delivered before the error.
 * - Leaving a `for await` loop early (break, return, throw) cancels the call on the provider,
 *   and so does an iterator dropped unfinished, once it is collected (proxy/call.ts).
 * - One reader only: a second iterator is refused.
 */
export class ClientStream<T = unknown> implements AsyncIterable<T> {
  /** The provider's trailer (the generator's return value); rejects when the stream fails. */
  readonly trailer: Promise<unknown>;
  readonly #queue: Array<{ value: T; bytes: number }> = [];
  readonly #onConsumed: (bytes: number) => void;
  readonly #onCancel: (reason: RpcError) => void;
  #resolveTrailer!: (value: unknown) => void;
  #rejectTrailer!: (error: unknown) => void;
  /** The reader waiting for a chunk, if it asked while none was queued: its promise's settle functions. */
  readonly #waiter: Settlers<IteratorResult<T>> = { resolve: unsettled, reject: unsettled };
  #waiting = false;
  #state: 'open' | 'ended' | 'failed' | 'cancelled' = 'open';
  #endValue: unknown;
  #error: RpcError | undefined;
  #iterated = false;
  #received = 0;
  readonly #first: Promise<void>;
  #resolveFirst!: () => void;
  #rejectFirst!: (error: unknown) => void;

  /**
   * @param onConsumed called with a chunk's wire size once the reader has taken it
   * @param onCancel called once if the reader gives up before the end
   */
  constructor(onConsumed: (bytes: number) => void, onCancel: (reason: RpcError) => void) {
    this.#onConsumed = onConsumed;
    this.#onCancel = onCancel;
    this.trailer = new Promise((resolve, reject) => {
      this.#resolveTrailer = resolve;
      this.#rejectTrailer = reject;
    });
    // Nobody has to look at the trailer; a failure is reported through the iterator too.
    this.trailer.catch(() => {});
    this.#first = new Promise((resolve, reject) => {
      this.#resolveFirst = resolve;
      this.#rejectFirst = reject;
    });
    this.#first.catch(() => {});
  }

  /** Chunks received so far. */
  get received(): number {
    return this.#received;
  }

  /** Whether the stream has ended, failed or been cancelled. */
  get finished(): boolean {
    return this.#state !== 'open';
  }

  /**
   * Resolves at the stream's first chunk or its end, or once the reader has left; rejects when
   * it fails before any chunk. The client treats a stream as opened only then, so a provider
   * that refuses a stream outright (shedding, an engine it cannot reach) is a failed attempt
   * the cluster may try elsewhere, like a refused unary call.
   */
  firstEvent(): Promise<void> {
    return this.#first;
  }

  /** Transport: a chunk arrived. */
  push(value: T, bytes: number): void {
    if (this.#state !== 'open') return;
    this.#received++;
    if (this.#received === 1) this.#resolveFirst();
    if (this.#waiting) {
      this.#waiting = false;
      this.#onConsumed(bytes);
      this.#waiter.resolve({ value, done: false });
    } else {
      this.#queue.push({ value, bytes });
    }
  }

  /** Transport: the provider ended the stream normally with `trailer`. */
  end(trailer: unknown): void {
    if (this.#state !== 'open') return;
    this.#state = 'ended';
    this.#endValue = trailer;
    this.#resolveTrailer(trailer);
    this.#resolveFirst();
    if (this.#waiting && this.#queue.length === 0) {
      this.#waiting = false;
      this.#waiter.resolve({ value: undefined as never, done: true });
    }
  }

  /** Transport or caller: the stream failed (error status, lost connection, deadline, abort). */
  fail(error: RpcError): void {
    if (this.#state !== 'open') return;
    this.#state = 'failed';
    this.#error = error;
    this.#rejectTrailer(error);
    if (this.#received === 0) this.#rejectFirst(error);
    if (this.#waiting && this.#queue.length === 0) {
      this.#waiting = false;
      this.#waiter.reject(error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterated) throw new RpcError(RpcCode.FAILED_PRECONDITION, 'a stream can be iterated only once');
    this.#iterated = true;
    return {
      next: () => this.#next(),
      return: (value?: unknown) => this.#stop(value),
      throw: (error?: unknown) => {
        this.#stop(undefined);
        return Promise.reject(error);
      },
    };
  }

  #next(): Promise<IteratorResult<T>> {
    const item = this.#queue.shift();
    if (item !== undefined) {
      this.#onConsumed(item.bytes);
      return Promise.resolve({ value: item.value, done: false });
    }
    switch (this.#state) {
      case 'ended':
      case 'cancelled':
        return Promise.resolve({ value: undefined as never, done: true });
      case 'failed':
        return Promise.reject(this.#error);
      default: {
        // No closure or object per chunk: the settle functions go into the one waiter.
        this.#waiting = true;
        return newPromise(this.#waiter);
      }
    }
  }

  /** The reader left early: cancel on the provider and drop what is queued. */
  #stop(value: unknown): Promise<IteratorResult<T>> {
    this.#queue.length = 0;
    if (this.#state === 'open') {
      this.#state = 'cancelled';
      this.#resolveFirst();
      const reason = new RpcError(RpcCode.CANCELLED, 'the reader stopped reading the stream');
      this.#rejectTrailer(reason);
      this.#onCancel(reason);
    }
    return Promise.resolve({ value: (value ?? this.#endValue) as never, done: true });
  }
}
