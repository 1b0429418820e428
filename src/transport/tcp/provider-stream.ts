import { RpcCode, RpcError } from '../../errors/errors.js';
import type { PayloadTarget, Serializer } from '../../serializer/serializer.js';
import type { LazyAbort } from '../lazy-abort.js';
import { encodeChunkFrame, encodeEndFrame } from '../stream-frames.js';
import { encodeErrorFrame } from './wire-error.js';
import { FrameType } from '../frame.js';

/**
 * Flow-control credit of one stream on the provider: bytes it may still send before the
 * consumer grants more with WINDOW_UPDATE. Credit may go negative by one chunk (a chunk larger
 * than the remaining credit is still sent whole), which keeps any chunk size possible.
 */
export class StreamCredit {
  readonly #window: number;
  #available: number;
  #wake: (() => void) | undefined;

  constructor(initial: number) {
    this.#window = initial;
    this.#available = initial;
  }

  get available(): number {
    return this.#available;
  }

  take(bytes: number): void {
    this.#available -= bytes;
  }

  /**
   * Adds credit from a WINDOW_UPDATE. Credit never exceeds the stream's window: a consumer that
   * grants more than it has received (a WINDOW_UPDATE of 0xffffffff) gains nothing by it.
   */
  grant(bytes: number): void {
    this.#available = Math.min(this.#window, this.#available + bytes);
    this.#release();
  }

  /** Resolves when credit is granted or `release()` is called (on abort). */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Resolves when `other` settles, credit is granted, or `release()` is called. */
  waitFor(other: Promise<void>): Promise<void> {
    return Promise.race([other, this.wait()]);
  }

  #release(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Wakes a waiting pump without credit, so it can see that its call was aborted. */
  release(): void {
    this.#release();
  }
}

/** What {@link pumpStream} needs. */
export interface PumpOptions {
  readonly requestId: number;
  readonly iterable: AsyncIterable<unknown>;
  readonly abort: LazyAbort;
  readonly credit: StreamCredit;
  readonly serializer: Serializer;
  readonly target: PayloadTarget;
  readonly write: (frame: Buffer) => void;
  /** The connection's writer: the pump also waits while the socket's unsent bytes are over budget. */
  readonly writer?: { readonly overBudget: boolean; drained(): Promise<void> };
  /** Sends what was written so far at once (used after the first chunk). */
  readonly flush: () => void;
  /** Told when the handler's generator fails (not when the call is aborted). */
  readonly onError?: (error: unknown) => void;
}

/**
 * Drives a streaming handler: pulls a value only when there is credit and the socket has room
 * (a consumer that grants credit but never reads its socket cannot make this side queue more
 * than the connection's unsent-bytes budget plus one chunk), writes each one at once
 * as a STREAM_CHUNK (no batching timer: the first token leaves as soon as it is yielded), and
 * ends with STREAM_END carrying the chunk count and the generator's return value as trailer.
 *
 * When the call is aborted (CANCEL, deadline, dropped connection) it stops pulling and calls
 * the generator's `return()`, so the handler's `finally` blocks run and the GPU slot is freed.
 * A CANCEL gets no answer (the consumer has left); a deadline gets STREAM_END with
 * DEADLINE_EXCEEDED; a handler error gets STREAM_END with that error.
 */
export async function pumpStream(options: PumpOptions): Promise<void> {
  const { requestId, abort, credit, serializer, target, write } = options;
  const where = `${target.service}.${target.method}`;
  let iterator: AsyncIterator<unknown> | undefined;
  let sequence = 0;
  let finished = false;
  try {
    if (options.iterable === null || typeof options.iterable !== 'object' || typeof options.iterable[Symbol.asyncIterator] !== 'function') {
      throw new RpcError(RpcCode.INTERNAL, `${where} is declared stream: true but did not return an async iterable (use an async generator method)`);
    }
    iterator = options.iterable[Symbol.asyncIterator]();
    const writer = options.writer;
    for (;;) {
      while (credit.available <= 0 && !abort.aborted) await credit.wait();
      if (abort.aborted) break;
      const step = await iterator.next();
      // Checked again after the handler's await, just before writing: many streams woken by
      // one drain must not all write past the budget.
      while (writer?.overBudget === true && !abort.aborted) await credit.waitFor(writer.drained());
      if (abort.aborted) break;
      if (step.done === true) {
        finished = true;
        const trailer = step.value === undefined ? new Uint8Array(0) : serializer.encode(step.value, target);
        write(encodeEndFrame(requestId, serializer.id, sequence, trailer));
        return;
      }
      const frame = encodeChunkFrame(requestId, serializer.id, sequence, serializer.encode(step.value, target));
      credit.take(frame.length);
      write(frame);
      if (sequence === 0) options.flush();
      sequence++;
    }
  } catch (error) {
    if (!abort.aborted) {
      finished = true;
      options.onError?.(error);
      write(encodeErrorFrame(FrameType.STREAM_END, requestId, RpcError.from(error)));
      return;
    }
  } finally {
    if (!finished) await iterator?.return?.().catch(() => {});
  }
  // Aborted: the provider's own deadline is reported; a caller that left gets nothing more.
  const reason = abort.reason;
  if (!abort.callerLeft && reason instanceof RpcError && reason.code === RpcCode.DEADLINE_EXCEEDED) {
    write(encodeErrorFrame(FrameType.STREAM_END, requestId, new RpcError(RpcCode.DEADLINE_EXCEEDED, `${where} did not complete before its deadline`)));
  }
}
