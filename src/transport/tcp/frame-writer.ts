import type net from 'node:net';

/**
 * Bytes after which a tick's writes are flushed without waiting for the tick to end, for stream
 * chunks. Measured with bench:stream on 2 cores: no limit 505–540 k chunks/s at 16 streams,
 * 64 KiB 610–640 k, 8–32 KiB 900–980 k; 16 KiB is in the middle.
 */
export const STREAM_FLUSH_BYTES = 16 * 1024;

/**
 * The same for everything else (requests, answers, control frames), where a slice sent early
 * lets the peer start on it while this side encodes the rest: with 32 unary calls in flight a
 * tick's requests or answers (about 3 KiB of 64-byte calls) leave in two slices instead of one,
 * and both ends work at once — 64 B x 32 went from 24.6 k to 35.6 k req/s (bench:unary's
 * ab.js, medians of 6), with 256 in flight unchanged.
 */
export const FLUSH_BYTES = 2 * 1024;

/**
 * Writes frames to a socket, coalescing every frame written in one tick into a single writev.
 * Under load this turns hundreds of small writes (one syscall each) into one; with one call in
 * flight it adds no delay, because the flush runs on the same tick's nextTick queue, before any
 * I/O — there is no batching timer.
 *
 * Stream frames ({@link writeStream}) wait a little longer: to the end of the event-loop turn
 * (setImmediate), so that the chunks of many streams fed by separate reads in one turn — a
 * worker relaying tokens that arrive on one engine connection per stream — leave in one writev
 * instead of one per read. A stream's first chunk is flushed at once by its caller.
 */
export class FrameWriter {
  readonly #socket: net.Socket;
  readonly #maxUnsentBytes: number;
  #corked = false;
  /** Whether this cork's end-of-tick flush is scheduled. */
  #tickFlush = false;
  /** Whether an end-of-turn flush is scheduled. */
  #turnFlush = false;
  #drained: Promise<void> | undefined;
  /** Bytes written since the last flush. */
  #pending = 0;
  /** Frames queued so far, all kinds. */
  #frames = 0;
  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#tickFlush = false;
    this.#pending = 0;
    this.#socket.uncork();
  };
  readonly #flushTurn = (): void => {
    this.#turnFlush = false;
    this.#uncork();
  };

  /**
   * @param maxUnsentBytes the budget of bytes queued in this process for the socket (written but
   *   not yet taken by the kernel): above it {@link overBudget} is true, and producers wait for
   *   {@link drained} before writing more
   */
  constructor(socket: net.Socket, maxUnsentBytes = Number.POSITIVE_INFINITY) {
    this.#socket = socket;
    this.#maxUnsentBytes = maxUnsentBytes;
  }

  /** Frames written so far (queued for the socket), of every kind. */
  get frames(): number {
    return this.#frames;
  }

  /** Bytes written to the socket and still queued in this process (the peer has not read them). */
  get unsentBytes(): number {
    return this.#socket.writableLength;
  }

  /** Whether the unsent bytes are above the budget: the peer is not reading fast enough. */
  get overBudget(): boolean {
    return this.#socket.writableLength > this.#maxUnsentBytes;
  }

  /**
   * Resolves once the socket has sent everything queued (its 'drain'), or has closed. One promise
   * is shared by every waiter, so a thousand waiting streams cost one listener.
   */
  drained(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed || socket.writableLength === 0) return Promise.resolve();
    // Corked bytes never drain: send them first.
    this.#uncork();
    this.#drained ??= new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        this.#drained = undefined;
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
    return this.#drained;
  }

  /**
   * Sends what is queued now instead of at the end of the tick. A stream's first chunk uses
   * it: a generator that yields many chunks without awaiting would otherwise hold the first
   * one back until it stops, and time to first token is what a reader feels.
   */
  flush(): void {
    this.#uncork();
  }

  /**
   * Queues `frame`; returns false when the socket is gone and the frame was dropped. What this
   * tick queued is sent once it reaches {@link FLUSH_BYTES}, the rest at the end of the tick.
   */
  write(frame: Uint8Array): boolean {
    return this.#queue(frame, FLUSH_BYTES, false);
  }

  /**
   * Queues a stream frame: sent once the queued bytes reach {@link STREAM_FLUSH_BYTES}, else at
   * the end of the event-loop turn — or of the tick, for a stream's `last` frame (its end) or
   * when another frame asks for that.
   */
  writeStream(frame: Uint8Array, last = false): boolean {
    return this.#queue(frame, STREAM_FLUSH_BYTES, !last);
  }

  #queue(frame: Uint8Array, flushAt: number, untilTurnEnd: boolean): boolean {
    const socket = this.#socket;
    if (socket.destroyed || !socket.writable) return false;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
    }
    if (untilTurnEnd) {
      if (!this.#turnFlush) {
        this.#turnFlush = true;
        setImmediate(this.#flushTurn);
      }
    } else if (!this.#tickFlush) {
      this.#tickFlush = true;
      process.nextTick(this.#uncork);
    }
    socket.write(frame);
    this.#frames++;
    // A burst (many chunks produced without an await) leaves in slices instead of one writev
    // at the end of the tick, so the reader can start on the first slice while this side
    // produces the next: on a multi-core machine both ends work at once.
    this.#pending += frame.length;
    if (this.#pending >= flushAt) this.#uncork();
    return true;
  }
}
