import type net from 'node:net';
import { DeadlineHeap } from '../../common/deadline-heap.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import { decodeError } from '../../serializer/serializer.js';
import { FrameDecoder } from '../decoder.js';
import { RequestHeadDecoder } from '../envelope.js';
import { LazyAbort } from '../lazy-abort.js';
import { FrameFlag, FrameType, HEADER_BYTES, encodeFrame, writeHeader, type Frame } from '../frame.js';
import { TIMEOUT_META, type CallHandler, type Peer } from '../transport.js';
import { FrameWriter } from './frame-writer.js';
import { encodeErrorFrame } from './wire-error.js';

/** Provider-side limits of one connection. */
export interface ServerConnectionOptions {
  readonly maxFrameBytes: number;
}

/**
 * The provider's side of one consumer connection: decodes frames, runs each REQUEST through the
 * {@link CallHandler}, and writes one RESPONSE per call. A framing violation sends GOAWAY with
 * the reason and closes this connection only; a bad call fails only that call.
 */
export class ServerConnection {
  readonly #socket: net.Socket;
  readonly #handler: CallHandler;
  readonly #writer: FrameWriter;
  readonly #decoder: FrameDecoder;
  readonly #peer: Peer;
  readonly #heads = new RequestHeadDecoder();
  /** Running calls by request id, each with the handle that cancels it. */
  readonly #running = new Map<number, LazyAbort>();
  readonly #deadlines = new DeadlineHeap({
    deadlineOf: (id) => this.#running.get(id)?.deadline,
    live: () => liveDeadlines(this.#running),
    liveCount: () => this.#running.size,
    expire: (id) => this.#running.get(id)?.abort(new RpcError(RpcCode.DEADLINE_EXCEEDED, 'deadline exceeded')),
  });
  #closing = false;
  #onIdle: (() => void) | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  constructor(socket: net.Socket, handler: CallHandler, options: ServerConnectionOptions) {
    this.#socket = socket;
    this.#handler = handler;
    this.#writer = new FrameWriter(socket);
    this.#decoder = new FrameDecoder(options.maxFrameBytes);
    this.#peer = { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? 0 };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {
      // 'close' follows; the error itself (ECONNRESET from a vanished client) needs no action.
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#deadlines.clear();
        this.#abortAll('the connection closed');
        resolve();
      });
    });
  }

  /** Calls currently running on this connection. */
  get running(): number {
    return this.#running.size;
  }

  /** Sends GOAWAY: the consumer stops sending new calls here; running calls still finish. */
  goAway(): void {
    this.#closing = true;
    this.#writer.write(encodeFrame(FrameType.GOAWAY, 0, undefined, { status: RpcCode.UNAVAILABLE }));
  }

  /** Resolves once no call is running (at once when none is). */
  idle(): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
    });
  }

  /**
   * Closes the socket. With no call running it ends politely (queued answers are flushed
   * first, then FIN); otherwise it is destroyed and the running calls are aborted.
   */
  close(): void {
    if (this.#running.size > 0) {
      this.#socket.destroy();
      return;
    }
    // end() runs after the nextTick flush of the frame writer, so the last answers go out.
    process.nextTick(() => this.#socket.end());
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onData(chunk: Buffer): void {
    try {
      this.#decoder.push(chunk, (frame) => this.#onFrame(frame));
    } catch (error) {
      this.#fail(RpcError.from(error, RpcCode.INTERNAL));
    }
  }

  /** A protocol violation: say why in a GOAWAY, then close. Other connections are untouched. */
  #fail(error: RpcError): void {
    this.#closing = true;
    this.#writer.write(encodeErrorFrame(FrameType.GOAWAY, 0, error));
    this.#socket.end();
    this.#socket.destroySoon();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.REQUEST:
        this.#onRequest(frame);
        return;
      case FrameType.CANCEL:
        this.#running.get(frame.requestId)?.abort(new RpcError(RpcCode.CANCELLED, 'cancelled by the caller'));
        return;
      case FrameType.HEARTBEAT:
        this.#writer.write(encodeFrame(FrameType.HEARTBEAT_ACK, frame.requestId));
        return;
      case FrameType.HEARTBEAT_ACK:
      case FrameType.GOAWAY:
      case FrameType.WINDOW_UPDATE:
        return;
      default:
        throw new RpcError(RpcCode.INTERNAL, `protocol error: a consumer may not send frame type ${frame.type}`);
    }
  }

  #onRequest(frame: Frame): void {
    const id = frame.requestId;
    const serializer = this.#handler.serializers.byId(frame.serializer);
    if (serializer === undefined) {
      throw new RpcError(RpcCode.INTERNAL, `protocol error: unknown serializer id ${frame.serializer} (this provider speaks ${this.#handler.serializers.names().join(', ')})`);
    }
    if (this.#running.has(id)) throw new RpcError(RpcCode.INTERNAL, `protocol error: request id ${id} is already in flight`);
    const oneWay = (frame.flags & FrameFlag.ONE_WAY) !== 0;
    if (this.#closing) return this.#answerError(id, oneWay, new RpcError(RpcCode.UNAVAILABLE, 'provider is going away', { details: { neverSent: true } }));

    let head;
    try {
      head = this.#heads.decode(frame.body);
    } catch (error) {
      return this.#answerError(id, oneWay, RpcError.from(error, RpcCode.INVALID_ARGUMENT));
    }
    const resolved = this.#handler.resolve(head.head);
    if (resolved instanceof RpcError) return this.#answerError(id, oneWay, resolved);
    if ((frame.flags & FrameFlag.STREAM) !== 0 || resolved.stream) {
      return this.#answerError(id, oneWay, new RpcError(RpcCode.UNIMPLEMENTED, `${resolved.service}.${resolved.method} is a streaming method; streaming calls are not supported by this build of the tcp transport yet`));
    }
    const target = { service: resolved.service, method: resolved.method, kind: 'request' } as const;
    let request: unknown;
    try {
      request = serializer.decode(frame.body.subarray(head.payloadOffset), target);
    } catch (error) {
      return this.#answerError(id, oneWay, decodeError(target, serializer, error));
    }

    const callerDeadline = parseDeadline(head.head.meta[TIMEOUT_META]);
    if (callerDeadline instanceof RpcError) return this.#answerError(id, oneWay, callerDeadline);
    const deadline = earliest(callerDeadline, resolved.timeoutMs === undefined ? undefined : Date.now() + resolved.timeoutMs);
    if (deadline !== undefined && deadline <= Date.now()) {
      return this.#answerError(id, oneWay, new RpcError(RpcCode.DEADLINE_EXCEEDED, `${resolved.service}.${resolved.method} arrived after its deadline; not started`));
    }
    const controller = new LazyAbort(deadline);
    this.#running.set(id, controller);
    if (deadline !== undefined) this.#deadlines.add(id, deadline);
    resolved
      .invoke(request, {
        get signal() {
          return controller.signal;
        },
        deadline,
        meta: head.head.meta,
        peer: this.#peer,
      })
      .then(
        (value) => {
          if (controller.aborted || oneWay) return;
          let payload: Uint8Array;
          try {
            payload = serializer.encode(value, { service: resolved.service, method: resolved.method, kind: 'response' });
          } catch (error) {
            this.#answerError(id, false, new RpcError(RpcCode.INTERNAL, `cannot encode the result of ${resolved.service}.${resolved.method} as ${serializer.name}: ${(error as Error).message}`));
            return;
          }
          const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
          writeHeader(out, 0, FrameType.RESPONSE, 0, serializer.id, RpcCode.OK, id, payload.length);
          out.set(payload, HEADER_BYTES);
          this.#writer.write(out);
        },
        (error: unknown) => {
          // After a cancel the caller has stopped listening; the result has nowhere to go.
          if (controller.reason instanceof RpcError && controller.reason.code === RpcCode.CANCELLED) return;
          this.#answerError(id, oneWay, RpcError.from(error));
        },
      )
      .finally(() => {
        this.#running.delete(id);
        if (this.#running.size === 0) this.#onIdle?.();
      });
  }

  #answerError(id: number, oneWay: boolean, error: RpcError): void {
    if (!oneWay) this.#writer.write(encodeErrorFrame(FrameType.RESPONSE, id, error));
  }

  #abortAll(reason: string): void {
    for (const controller of this.#running.values()) {
      controller.abort(new RpcError(RpcCode.CANCELLED, reason));
    }
  }
}

function* liveDeadlines(running: ReadonlyMap<number, LazyAbort>): Iterable<readonly [number, number]> {
  for (const [id, call] of running) if (call.deadline !== undefined) yield [id, call.deadline];
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/**
 * Turns the caller's remaining time into a local absolute deadline. The wire carries a relative
 * timeout, as gRPC's grpc-timeout does, so that clock skew between machines cannot expire a call
 * early or late.
 */
function parseDeadline(value: string | undefined): number | RpcError | undefined {
  if (value === undefined) return undefined;
  const ms = Number(value);
  if (value === '' || !Number.isInteger(ms) || ms < 0) {
    return new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${TIMEOUT_META} must be a non-negative integer of milliseconds, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return Date.now() + ms;
}
