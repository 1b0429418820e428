import type { Metadata, Peer } from '../../call/invocation.js';
import type { RpcError } from '../../errors/errors.js';
import type { PayloadTarget, Serializer } from '../../serializer/serializer.js';
import { FrameType } from '../frame.js';
import { ProviderCall } from '../provider-call.js';
import { encodeChunkFrame, encodeEndFrame } from '../stream-frames.js';
import type { CallHandler, ResolvedMethod } from '../transport.js';
import type { StreamCredit } from './provider-stream.js';
import { encodeErrorFrame, oversizedMessage } from './wire-error.js';

/** Chunks at the start of a stream that may leave in doubling slices (see TcpCall.chunk). */
const OPENING_CHUNKS = 256;

/** What a {@link TcpCall} writes through: its connection (one object per connection, not per call). */
export interface TcpCallWire {
  /** Writes a unary call's RESPONSE (or its replacement when the connection cannot take it). */
  answer(call: TcpCall, value: unknown): void;
  /** Writes a unary call's error RESPONSE. */
  answerError(call: TcpCall, error: RpcError): void;
  /**
   * Queues a frame of a stream (sent in slices of STREAM_FLUSH_BYTES, see frame-writer.ts): a
   * chunk waits at most to the end of the event-loop turn, a stream's `last` frame (its end)
   * to the end of the tick, as an answer does — the caller's next step waits for it.
   */
  write(frame: Buffer, last?: boolean): void;
  /** Sends what was queued at once. */
  flush(): void;
  /** Calls running on the connection. */
  readonly running: number;
  /** The largest frame body the connection sends (its own maxFrameBytes: peers refuse more). */
  readonly maxFrameBytes: number;
  /** The connection's unsent answers: a stream waits while they are over budget. */
  readonly writer: { readonly overBudget: boolean; drained(): Promise<void> };
  /** The call is over: its id, credit and decoded budget are released. */
  ended(call: TcpCall): void;
}

/**
 * A provider call on the tcp transport: the shared pipeline's {@link ProviderCall} with this
 * wire's request id, serializer and, for a stream, its flow-control credit.
 */
export class TcpCall extends ProviderCall {
  readonly id: number;
  readonly oneWay: boolean;
  readonly serializer: Serializer;
  /** Estimated decoded bytes of its request, held in the decoded budgets while it runs. */
  readonly cost: number;
  /** A stream's credit: bytes it may still send before the consumer grants more. */
  readonly credit: StreamCredit | undefined;
  readonly #wire: TcpCallWire;
  #target: PayloadTarget | undefined;
  #sequence = 0;

  // Positional, not an options object: one object per call is the budget of the hot path.
  constructor(
    wire: TcpCallWire,
    handler: CallHandler,
    method: ResolvedMethod,
    id: number,
    oneWay: boolean,
    serializer: Serializer,
    cost: number,
    credit: StreamCredit | undefined,
    deadline: number | undefined,
    meta: Metadata,
    peer: Peer,
  ) {
    super(handler, method, deadline, meta, peer);
    this.#wire = wire;
    this.id = id;
    this.oneWay = oneWay;
    this.serializer = serializer;
    this.cost = cost;
    this.credit = credit;
  }

  /** Where its answers' payloads go, for serializers that need to know (protobuf). */
  get target(): PayloadTarget {
    return (this.#target ??= { service: this.method.service, method: this.method.method, kind: 'response' });
  }

  protected answer(value: unknown): void {
    if (!this.oneWay) this.#wire.answer(this, value);
  }

  protected fail(error: RpcError): void {
    if (this.method.stream) this.#wire.write(encodeErrorFrame(FrameType.STREAM_END, this.id, error), true);
    else if (!this.oneWay) this.#wire.answerError(this, error);
  }

  protected ended(): void {
    this.#wire.ended(this);
  }

  protected override room(): Promise<void> | undefined {
    const credit = this.credit!;
    if (credit.available <= 0) return credit.wait();
    const writer = this.#wire.writer;
    // A consumer that grants credit but never reads its socket cannot make this side queue more
    // than the connection's unsent-bytes budget plus one chunk.
    if (writer.overBudget) return credit.waitFor(writer.drained());
    return undefined;
  }

  protected override chunk(value: unknown): undefined {
    const payload = this.serializer.encode(value, this.target);
    if (payload.length + 4 > this.#wire.maxFrameBytes) {
      throw oversizedMessage(`chunk ${this.#sequence} of ${this.method.service}.${this.method.method}`, payload.length + 4, this.#wire.maxFrameBytes);
    }
    const frame = encodeChunkFrame(this.id, this.serializer.id, this.#sequence, payload);
    this.credit!.take(frame.length);
    this.#wire.write(frame);
    // The first token leaves at once. While the stream is its connection's only call, its next
    // chunks leave in doubling slices (after 2, 4, 8 … 256 chunks), as TCP's slow start grows:
    // the reader, idle until then, starts on them while the rest is made, where a generator
    // that yields without waiting would otherwise hand it the first 16 KiB slice (400 tokens)
    // at once. Beside other calls the reader has work, and the turn's slices serve.
    const sequence = this.#sequence++;
    if (sequence === 0 || (sequence < OPENING_CHUNKS && (sequence & (sequence + 1)) === 0 && this.#wire.running === 1)) this.#wire.flush();
    return undefined;
  }

  protected override end(value: unknown): void {
    const trailer = value === undefined ? new Uint8Array(0) : this.serializer.encode(value, this.target);
    if (trailer.length + 4 > this.#wire.maxFrameBytes) {
      throw oversizedMessage(`the return value of ${this.method.service}.${this.method.method}`, trailer.length + 4, this.#wire.maxFrameBytes);
    }
    this.#wire.write(encodeEndFrame(this.id, this.serializer.id, this.#sequence, trailer), true);
  }
}
