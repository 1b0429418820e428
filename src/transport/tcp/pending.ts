import { RpcCode, RpcError } from '../../errors/errors.js';
import { newPromise, unsettled, type Settlers } from '../../common/settlers.js';
import type { PayloadTarget, Serializer } from '../../serializer/serializer.js';
import { ClientStream } from '../client-stream.js';
import { FrameType, type Frame } from '../frame.js';
import { readU32 } from '../stream-frames.js';
import { decodeWireError } from './wire-error.js';
import { sentCallError } from '../call-limits.js';

/**
 * A call in flight on a consumer connection, unary or streaming, as the connection's frame
 * dispatch sees it. `accept` takes a frame for this call and says whether the call is over.
 */
export interface PendingCall {
  readonly target: PayloadTarget;
  readonly deadline: number | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Handles a RESPONSE, STREAM_CHUNK or STREAM_END for this call; true when the call is over. */
  accept(frame: Frame): boolean;
  /** Ends the call with `error` (deadline, abort, lost connection). */
  fail(error: RpcError): void;
  /**
   * Frames an honest provider may still send for this call once the consumer has given it up
   * (they cross the CANCEL): the connection allows that many more answers for no running call.
   */
  readonly strayFrames: number;
}

/** The smallest STREAM_CHUNK frame: a header and a sequence number. */
const MIN_CHUNK_FRAME_BYTES = 24;

/** A unary call: one RESPONSE settles it; `answer` is its promise. */
export class UnaryCall implements PendingCall, Settlers<unknown> {
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve: (value: unknown) => void = unsettled;
  reject: (error: unknown) => void = unsettled;
  readonly answer: Promise<unknown>;
  /** Its RESPONSE. */
  readonly strayFrames = 1;

  constructor(
    readonly target: PayloadTarget,
    readonly deadline: number | undefined,
    private readonly serializer: Serializer,
  ) {
    this.answer = newPromise(this);
  }

  accept(frame: Frame): boolean {
    if (frame.type !== FrameType.RESPONSE) {
      throw new RpcError(RpcCode.INTERNAL, `protocol error: frame type ${frame.type} for unary call ${frame.requestId}`);
    }
    if (frame.status !== RpcCode.OK) {
      this.reject(sentCallError(decodeWireError(frame)));
    } else if (frame.serializer !== this.serializer.id) {
      this.reject(new RpcError(RpcCode.INTERNAL, `response serializer ${frame.serializer} differs from request serializer ${this.serializer.id}`));
    } else {
      try {
        this.resolve(this.serializer.decode(frame.body, this.target));
      } catch (error) {
        this.reject(
          new RpcError(RpcCode.INTERNAL, `cannot decode response of ${this.target.service}.${this.target.method}: ${(error as Error).message}`, {
            cause: error,
          }),
        );
      }
    }
    return true;
  }

  fail(error: RpcError): void {
    this.reject(error);
  }
}

/**
 * A server-streaming call: STREAM_CHUNKs in sequence, then STREAM_END. A gap in the sequence
 * numbers or a chunk count that does not match the end frame is DATA_LOSS: a stream is either
 * complete or an error, never silently short.
 *
 * The provider may send a chunk only while it has credit (the window, less what it sent, plus
 * what this side granted back); a chunk that arrives when none is left is a protocol error that
 * closes the connection, so a hostile provider can make a reader hold at most its window and one
 * frame.
 */
export class StreamCall implements PendingCall {
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  readonly stream: ClientStream;
  #next = 0;
  /** Chunk bytes received and not yet granted back to the provider. */
  #unacknowledged = 0;

  constructor(
    readonly target: PayloadTarget,
    readonly deadline: number | undefined,
    private readonly serializer: Serializer,
    private readonly window: number,
    onConsumed: (bytes: number) => void,
    onCancel: (reason: RpcError) => void,
  ) {
    this.stream = new ClientStream(onConsumed, onCancel);
  }

  /** The chunks the provider's credit still allows, each as small as a chunk can be, and STREAM_END. */
  get strayFrames(): number {
    return Math.ceil(Math.max(0, this.window - this.#unacknowledged) / MIN_CHUNK_FRAME_BYTES) + 2;
  }

  /** The connection sent a WINDOW_UPDATE of `bytes` for this stream. */
  granted(bytes: number): void {
    this.#unacknowledged -= bytes;
  }

  /** The call's name for errors (built only when one is). */
  get #where(): string {
    return `${this.target.service}.${this.target.method}`;
  }

  accept(frame: Frame): boolean {
    switch (frame.type) {
      case FrameType.STREAM_CHUNK: {
        // Our view of the provider's credit is never smaller than its own (grants in flight
        // count here first), so an honest provider never trips this.
        if (this.#unacknowledged >= this.window) {
          throw new RpcError(
            RpcCode.INTERNAL,
            `protocol error: ${this.#where} sent a chunk beyond its flow-control window (${this.#unacknowledged} bytes unacknowledged, window ${this.window})`,
          );
        }
        this.#unacknowledged += frame.body.length + 20;
        const sequence = readU32(frame.body, 'STREAM_CHUNK');
        if (sequence !== this.#next) {
          this.stream.fail(new RpcError(RpcCode.DATA_LOSS, `${this.#where}: chunk ${sequence} arrived where ${this.#next} was expected`));
          return true;
        }
        this.#next++;
        let value: unknown;
        try {
          value = this.serializer.decode(frame.body.subarray(4), this.target);
        } catch (error) {
          this.stream.fail(new RpcError(RpcCode.INTERNAL, `cannot decode chunk ${sequence} of ${this.#where}: ${(error as Error).message}`, { cause: error }));
          return true;
        }
        this.stream.push(value, frame.body.length + 20);
        return false;
      }
      case FrameType.STREAM_END: {
        if (frame.status !== RpcCode.OK) {
          this.stream.fail(sentCallError(decodeWireError(frame)));
          return true;
        }
        const count = readU32(frame.body, 'STREAM_END');
        if (count !== this.#next) {
          this.stream.fail(new RpcError(RpcCode.DATA_LOSS, `${this.#where}: the provider sent ${count} chunks, ${this.#next} arrived`));
          return true;
        }
        let trailer: unknown;
        try {
          trailer = frame.body.length > 4 ? this.serializer.decode(frame.body.subarray(4), { ...this.target, kind: 'response' }) : undefined;
        } catch (error) {
          this.stream.fail(new RpcError(RpcCode.INTERNAL, `cannot decode the trailer of ${this.#where}: ${(error as Error).message}`, { cause: error }));
          return true;
        }
        this.stream.end(trailer);
        return true;
      }
      case FrameType.RESPONSE:
        // A provider refuses a stream before starting it with an ordinary error response.
        this.stream.fail(
          frame.status === RpcCode.OK
            ? new RpcError(RpcCode.INTERNAL, `protocol error: ${this.#where} answered a stream with a unary response`)
            : decodeWireError(frame),
        );
        return true;
      default:
        throw new RpcError(RpcCode.INTERNAL, `protocol error: frame type ${frame.type} for stream ${frame.requestId}`);
    }
  }

  fail(error: RpcError): void {
    this.stream.fail(error);
  }
}
