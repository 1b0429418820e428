import type net from 'node:net';
import type { ByteBudget } from '../byte-budget.js';
import type { FrameDecoder } from '../decoder.js';
import type { Frame } from '../frame.js';

/** Why a connection has stopped reading from its peer; several may hold at once. */
export const Hold = {
  /** The peer is not reading our answers: unsent bytes are above their budget. */
  OUTBOUND: 1,
  /** The running calls' decoded requests are at their budget. */
  DECODED: 2,
  /** The server's budget of partially received frames is spent. */
  INBOUND: 4,
  /** This turn of the event loop has started its share of calls; the rest wait for the next. */
  SLICE: 8,
} as const;

/**
 * Calls one connection may start in one turn of the event loop, until its answers' size is
 * known. A 64 KiB read can hold 1,600 small requests: started at once, a method answering 1 MB
 * allocated 1.6 GB before the first answer was written and the outbound budget could stop the
 * reading. Slices bound that burst and let other connections take turns in between; once the
 * answers' size is known, the slice is as many calls as 1 MiB of such answers (see
 * {@link ReadGate.sizeSlices}), so small answers are not sliced at all (slicing 64-byte echoes
 * at 16 cost 17 % of throughput at 256 calls in flight).
 */
const FIRST_CALLS_PER_TURN = 16;
const MAX_CALLS_PER_TURN = 4096;

/**
 * Decides when a provider connection reads from its socket, and times the frames it reads.
 *
 * Backpressure: any budget that is exhausted holds the gate; while any hold is on, the socket
 * is paused (the kernel's buffers fill and TCP slows the peer down) and the decoder hands out
 * no more frames. Reading resumes when the last hold is lifted.
 *
 * The frame timer measures the time spent inside one frame: armed when a frame has begun and not
 * completed, restarted at every frame boundary (a pipelining peer whose every write ends a byte
 * into the next frame is never timed out), and stopped while this side holds the gate for its
 * own reasons (outbound or decoded), since the peer cannot finish a frame we do not read.
 */
export class ReadGate {
  readonly #socket: net.Socket;
  readonly #decoder: FrameDecoder;
  readonly #onFrame: (frame: Frame) => void;
  readonly #frameTimeoutMs: number;
  readonly #onFrameTimeout: () => void;
  readonly #inbound: ByteBudget | undefined;
  #holds = 0;
  #frameTimer: NodeJS.Timeout | undefined;
  /** Frames the decoder had handed out when the frame timer was last armed. */
  #timedFrame = -1;
  /** The frame (decoder's count) this connection reads past the spent inbound budget for, or -1. */
  #overdraftFrame = -1;
  /** Bytes of the decoder's buffer charged to the inbound budget. */
  #charged = 0;
  #withdrawWait: (() => void) | undefined;
  #startedThisTurn = 0;
  #callsPerTurn = FIRST_CALLS_PER_TURN;
  readonly #nextTurn = (): void => {
    this.#startedThisTurn = 0;
    this.release(Hold.SLICE);
  };

  constructor(options: {
    socket: net.Socket;
    decoder: FrameDecoder;
    onFrame: (frame: Frame) => void;
    frameTimeoutMs: number;
    onFrameTimeout: () => void;
    inbound?: ByteBudget;
  }) {
    this.#socket = options.socket;
    this.#decoder = options.decoder;
    this.#onFrame = options.onFrame;
    this.#frameTimeoutMs = options.frameTimeoutMs;
    this.#onFrameTimeout = options.onFrameTimeout;
    this.#inbound = options.inbound;
  }

  /** Whether `reason` holds the gate now. */
  holds(reason: number): boolean {
    return (this.#holds & reason) !== 0;
  }

  /** Feeds received bytes (throws what the decoder throws), then re-times and re-charges. */
  push(chunk: Buffer): void {
    this.#allowGrowth();
    this.#decoder.push(chunk, this.#onFrame);
    this.#afterInput();
  }

  /**
   * How far the decoder may grow a partial frame's buffer ahead of its bytes: what the shared
   * budget has left, or without bound for the connection holding the overdraft (its one frame
   * is the progress rule's allowance). A read taken past a spent budget then costs its own bytes,
   * not a buffer four times what the connection held.
   */
  #allowGrowth(): void {
    const inbound = this.#inbound;
    if (inbound === undefined) return;
    this.#decoder.growthAllowance = this.#overdraftFrame !== -1 ? Number.POSITIVE_INFINITY : Math.max(0, inbound.limit - inbound.used);
  }

  /**
   * The connection started a call: after its share for this turn, reading stops until the next
   * turn (a macrotask, so timers and other sockets run in between).
   */
  started(): void {
    if (++this.#startedThisTurn < this.#callsPerTurn) return;
    if (this.holds(Hold.SLICE)) return;
    this.hold(Hold.SLICE);
    setImmediate(this.#nextTurn);
  }

  /**
   * Sizes the slice from the typical answer: as many calls per turn as `budgetBytes` of answers
   * of `answerBytes` each (at least the first slice, at most 4,096).
   */
  sizeSlices(budgetBytes: number, answerBytes: number): void {
    this.#callsPerTurn = Math.min(MAX_CALLS_PER_TURN, Math.max(FIRST_CALLS_PER_TURN, Math.floor(budgetBytes / Math.max(1, answerBytes))));
  }

  /** Stops reading for `reason`. */
  hold(reason: number): void {
    if (this.#holds === 0) {
      this.#socket.pause();
      this.#decoder.pause();
    }
    this.#holds |= reason;
    if (reason !== Hold.INBOUND) this.#stopTimer();
    // A connection that stops reading for long (its peer reads nothing, its calls hold their
    // decoded budget) must not keep the others waiting on its overdraft.
    if ((reason & (Hold.OUTBOUND | Hold.DECODED)) !== 0) this.#endOverdraft();
  }

  /** Lifts `reason`; with no hold left, reading resumes with the frames held meanwhile. */
  release(reason: number): void {
    if ((this.#holds & reason) === 0) return;
    this.#holds &= ~reason;
    if (this.#holds !== 0) return;
    this.#allowGrowth();
    this.#decoder.resume(this.#onFrame);
    this.#afterInput();
    if (this.#holds === 0 && !this.#socket.destroyed) this.#socket.resume();
  }

  /** The connection is closing: stop the timer and give back every charged byte. */
  close(): void {
    this.#stopTimer();
    this.#endOverdraft();
    this.#withdrawWait?.();
    this.#inbound?.charge(-this.#charged);
    this.#charged = 0;
  }

  #afterInput(): void {
    const decoder = this.#decoder;
    const inbound = this.#inbound;
    if (inbound !== undefined) {
      const held = decoder.bufferedBytes;
      inbound.charge(held - this.#charged);
      this.#charged = held;
      // The frame the overdraft was taken for is whole: let the next connection have it.
      if (this.#overdraftFrame !== -1 && (!decoder.inFrame || decoder.frames !== this.#overdraftFrame)) this.#endOverdraft();
      if (held > 0 && inbound.exhausted && this.#overdraftFrame === -1 && !this.holds(Hold.INBOUND)) {
        if (decoder.inFrame && !this.holds(Hold.OUTBOUND | Hold.DECODED) && inbound.overdraw(this)) {
          // Every connection may hold part of a frame and wait on the others: one at a time
          // reads on to the end of its frame, so the spent budget never stalls them all.
          this.#overdraftFrame = decoder.frames;
        } else {
          this.hold(Hold.INBOUND);
          this.#withdrawWait = inbound.wait(() => {
            this.#withdrawWait = undefined;
            this.release(Hold.INBOUND);
          });
        }
      }
    }
    if (!decoder.inFrame || (this.#holds & ~Hold.INBOUND) !== 0) {
      this.#stopTimer();
    } else if (this.#frameTimer === undefined) {
      this.#timedFrame = decoder.frames;
      this.#frameTimer = setTimeout(this.#onFrameTimeout, this.#frameTimeoutMs);
      this.#frameTimer.unref();
    } else if (this.#timedFrame !== decoder.frames) {
      // A frame boundary was crossed since the timer was armed: time the new frame from now.
      this.#timedFrame = decoder.frames;
      this.#frameTimer.refresh();
    }
  }

  #endOverdraft(): void {
    if (this.#overdraftFrame === -1) return;
    this.#overdraftFrame = -1;
    this.#inbound!.endOverdraft(this);
  }

  #stopTimer(): void {
    clearTimeout(this.#frameTimer);
    this.#frameTimer = undefined;
  }
}
