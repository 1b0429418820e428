import type net from 'node:net';
import { DeadlineHeap, liveDeadlines } from '../../common/deadline-heap.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import { SerializerId, decodeError } from '../../serializer/serializer.js';
import { FrameDecoder } from '../decoder.js';
import { RequestHeadDecoder } from '../envelope.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../admission.js';
import { FrameFlag, FrameType, HEADER_BYTES, encodeFrame, writeHeader, type Frame } from '../frame.js';
import { WINDOW_META, providerWindow, readU32 } from '../stream-frames.js';
import { DEFAULT_STREAM_WINDOW, MIN_STREAM_WINDOW } from '../defaults.js';
import { ACCEPT_LOAD_META, LOAD_PUSH_EVERY_MS, LOAD_PUSH_RECENT_MS, LOAD_REPORT_EVERY_MS, TIMEOUT_META, type CallHandler } from '../transport.js';
import { callDeadline, checkMode, goingAway } from '../provider-call.js';
import type { Peer } from '../../call/invocation.js';
import type { ByteBudget } from '../byte-budget.js';
import { FrameWriter } from './frame-writer.js';
import { FAIR_SHARE_BYTES, OutboundBudget } from './outbound-budget.js';
import { StreamCredit } from './provider-stream.js';
import { TcpCall, type TcpCallWire } from './tcp-call.js';
import { Hold, ReadGate } from './read-gate.js';
import { encodeErrorFrame, oversizedMessage } from './wire-error.js';
import { headCost, ownPayload } from './request-cost.js';
import { NoopFrameBudget, noopFlood } from './noop-frames.js';
import { monotonicNow } from '../../common/clock.js';

/** Provider-side limits of one connection. */
export interface ServerConnectionOptions {
  readonly maxFrameBytes: number;
  /** Frame timeout, idle timeout, calls at once and byte budgets; the defaults when absent. */
  readonly limits?: ConnectionLimits;
  /** The server's budgets, shared by its connections; none when absent. */
  readonly budgets?: ServerBudgets;
  /** The provider's load report to attach to answers (see ListenOptions.loadReport). */
  readonly loadReport?: () => Uint8Array | undefined;
  /** Told when this connection is closed for a flood of frames that do no work (counted, logged). */
  readonly onFlood?: () => void;
}

/** Budgets one server's connections share (the `maxTotal*` limits). */
export interface ServerBudgets {
  /** Partially received frames. */
  readonly inbound: ByteBudget;
  /** Answers waiting unsent. */
  readonly outbound: ByteBudget;
  /** Estimated decoded requests of running calls. */
  readonly decoded: ByteBudget;
}

/**
 * Unsent bytes, as a multiple of `maxUnsentBytes`, past which a finished unary call's answer is
 * replaced by a short RESOURCE_EXHAUSTED error: reading has long stopped, and calls that were
 * already running must not pile their answers up behind a peer that reads nothing.
 */
const DROP_ANSWERS_FACTOR = 4;

/**
 * Bytes of answers the calls one connection starts in one event-loop turn may add up to, once
 * their size is known: 64-byte answers are not sliced at all, 64 KiB ones 16 at a time.
 */
const SLICE_ANSWER_BYTES = 1024 * 1024;

/**
 * Frames a consumer may send because of each call it makes, on top of the budget of frames that
 * do no work: one CANCEL that may cross the answer, and the WINDOW_UPDATEs its reader still
 * grants for a stream that already ended here (it holds at most a window and one frame, granted
 * back in half windows), with one to spare.
 */
const NOOP_FRAMES_PER_CALL = 4;

/**
 * The provider's side of one consumer connection: decodes frames, runs each REQUEST through the
 * {@link CallHandler}, and writes one RESPONSE per call. A framing violation sends GOAWAY with
 * the reason and closes this connection only; a bad call fails only that call.
 */
export class ServerConnection {
  readonly #socket: net.Socket;
  readonly #handler: CallHandler;
  readonly #writer: FrameWriter;
  /** The largest frame body this side accepts, and so the largest it sends. */
  readonly #maxFrameBytes: number;
  readonly #gate: ReadGate;
  readonly #peer: Peer;
  readonly #heads = new RequestHeadDecoder();
  /** Running calls by request id. */
  readonly #running = new Map<number, TcpCall>();
  /** How this connection's calls write their answers (one object for all of them). */
  readonly #wire: TcpCallWire;
  readonly #deadlines = new DeadlineHeap({
    deadlineOf: (id) => this.#running.get(id)?.deadline,
    live: () => liveDeadlines(this.#running),
    liveCount: () => this.#running.size,
    expire: (id) => this.#abortCall(id, new RpcError(RpcCode.DEADLINE_EXCEEDED, 'deadline exceeded')),
  });
  readonly #limits: ConnectionLimits;
  /** Calls of the current read, started once it has been read through (see #startCalls). */
  #starting: Array<{ readonly call: TcpCall; readonly request: unknown; readonly stream: boolean }> = [];
  /** Estimated decoded bytes of the running calls' requests. */
  #decodedBytes = 0;
  /** A REQUEST that waits for decoded bytes to be given back before it is decoded. */
  #deferred: Frame | undefined;
  /** The deferred request whose estimated decoded size is {@link #deferredCost}, until it is retried. */
  #deferredPriced: Frame | undefined;
  #deferredCost = 0;
  #withdrawDecodedWait: (() => void) | undefined;
  readonly #outbound: OutboundBudget;
  /** Moving average of this connection's unary answers, in bytes (0 before the first). */
  #answerBytes = 0;
  readonly #budgets: ServerBudgets | undefined;
  readonly #loadReport: (() => Uint8Array | undefined) | undefined;
  /** When this connection last attached a load report. */
  #loadSentAt = 0;
  /**
   * The connection's traffic other than pushed LOAD frames (bytes read plus frames written) at
   * the last push check, and when it last moved: pushes go only to a connection in use.
   */
  #traffic = -1;
  #trafficAt = 0;
  /** LOAD frames pushed between answers, left out of {@link #traffic}. */
  #pushes = 0;
  /** Whether the consumer said it reads LOAD frames (ACCEPT_LOAD_META). */
  #loadWanted = false;
  /** Frames received that caused no work (see MAX_NOOP_FRAMES). */
  readonly #noop = new NoopFrameBudget();
  readonly #onFlood: (() => void) | undefined;
  #closing = false;
  #failed = false;
  #onIdle: (() => void) | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  constructor(socket: net.Socket, handler: CallHandler, options: ServerConnectionOptions) {
    this.#socket = socket;
    this.#handler = handler;
    this.#limits = options.limits ?? DEFAULT_CONNECTION_LIMITS;
    this.#writer = new FrameWriter(socket, this.#limits.maxUnsentBytes);
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#gate = new ReadGate({
      socket,
      decoder: new FrameDecoder(options.maxFrameBytes),
      onFrame: (frame) => this.#onFrame(frame),
      frameTimeoutMs: this.#limits.frameTimeoutMs,
      onFrameTimeout: () =>
        this.#fail(new RpcError(RpcCode.INTERNAL, `protocol error: a frame did not complete within ${this.#limits.frameTimeoutMs} ms (frame timeout)`)),
      ...(options.budgets === undefined ? {} : { inbound: options.budgets.inbound }),
    });
    this.#budgets = options.budgets;
    this.#loadReport = options.loadReport;
    this.#onFlood = options.onFlood;
    this.#outbound = new OutboundBudget(this.#writer, this.#gate, this.#limits.maxUnsentBytes, options.budgets?.outbound, () => this.#resume(Hold.OUTBOUND));
    this.#peer = { address: socket.remoteAddress ?? 'unknown', port: socket.remotePort ?? 0 };
    const running = this.#running;
    this.#wire = {
      answer: (call, value) => this.#answer(call, value),
      answerError: (call, error) => this.#answerError(call.id, call.oneWay, error),
      write: (frame, last) => {
        this.#writer.writeStream(frame, last);
        this.#outbound.check();
      },
      flush: () => this.#writer.flush(),
      maxFrameBytes: options.maxFrameBytes,
      get running() {
        return running.size;
      },
      writer: this.#writer,
      ended: (call) => this.#ended(call),
    };
    socket.setNoDelay(true);
    // Consumers send a heartbeat after every quiet interval, so a connection that stays silent
    // this long belongs to a peer that is gone, hung, or never spoke the protocol. Writes count
    // as activity too, so a peer that reads nothing while answers wait for it (reading from it
    // is then paused, see ReadGate) is closed after the same time: the last step of
    // backpressure.
    socket.setTimeout(this.#limits.idleTimeoutMs, () => {
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, `protocol error: nothing received for ${this.#limits.idleTimeoutMs} ms (idle timeout)`));
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {
      // 'close' follows; the error itself (ECONNRESET from a vanished client) needs no action.
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#gate.close();
        this.#withdrawDecodedWait?.();
        this.#outbound.close();
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
   * first, then FIN). Calls still running are aborted: with `drainTimeoutMs` (the server's drain
   * ran out) each caller is first told so — UNAVAILABLE naming the method and the drain time,
   * instead of a bare dropped connection — and the socket then ends politely; without it the
   * socket is destroyed.
   */
  close(drainTimeoutMs?: number): void {
    if (this.#running.size > 0) {
      if (drainTimeoutMs === undefined) {
        this.#socket.destroy();
        return;
      }
      this.#cutRunning(drainTimeoutMs);
    }
    // end() runs after the nextTick flush of the frame writer, so the last answers go out.
    process.nextTick(() => this.#socket.end());
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onData(chunk: Buffer): void {
    // A connection failed for a violation is only waiting for its GOAWAY to leave: what still
    // arrives is read and dropped unparsed (see #fail).
    if (this.#failed) return;
    // The frame timer runs from a frame's first byte and is not reset by more bytes of the same
    // frame (a peer trickling one byte a second must not hold the connection for ever); it
    // restarts at each frame boundary (ReadGate).
    try {
      this.#gate.push(chunk);
    } catch (error) {
      this.#fail(RpcError.from(error, RpcCode.INTERNAL));
    }
  }

  /** Lifts a hold; errors in the frames held meanwhile fail the connection as in #onData. */
  #resume(reason: number): void {
    if (this.#failed) return;
    try {
      this.#gate.release(reason);
    } catch (error) {
      this.#fail(RpcError.from(error, RpcCode.INTERNAL));
    }
  }

  /** A protocol violation: say why in a GOAWAY, then close. Other connections are untouched. */
  #fail(error: RpcError): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#gate.close();
    this.#closing = true;
    this.#writer.write(encodeErrorFrame(FrameType.GOAWAY, 0, error));
    // FIN after the GOAWAY; the socket closes when the peer closes its side, or after a second.
    // Not at once: a socket closed with unread bytes (a peer still flooding) is reset, and a
    // reset right behind the GOAWAY can make the peer lose it unread (a lingering close).
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.REQUEST:
        this.#noop.allow(NOOP_FRAMES_PER_CALL);
        this.#onRequest(frame);
        return;
      case FrameType.CANCEL: {
        // Every CANCEL is counted: one per call is allowed on top of the budget (see #noop), and
        // one that aborts a call makes the running call's own work stop rather than adding any.
        if (this.#noop.spend()) return this.#flooded();
        this.#abortCall(
          frame.requestId,
          frame.status === RpcCode.DEADLINE_EXCEEDED
            ? new RpcError(RpcCode.DEADLINE_EXCEEDED, 'deadline exceeded (the caller gave up)', { details: { callerLeft: true } })
            : new RpcError(RpcCode.CANCELLED, 'cancelled by the caller', { details: { callerLeft: true } }),
        );
        return;
      }
      case FrameType.WINDOW_UPDATE: {
        const credit = this.#running.get(frame.requestId)?.credit;
        // Credit for no running stream, or none to gain (the stream's credit is at its window).
        if (credit === undefined || !credit.grant(readU32(frame.body, 'WINDOW_UPDATE'))) {
          if (this.#noop.spend()) this.#flooded();
        }
        return;
      }
      case FrameType.HEARTBEAT:
        if (this.#noop.spend()) return this.#flooded();
        // Bytes still queued for the peer prove this side alive as well as an ACK would (a
        // consumer counts anything it reads), so only a peer with nothing waiting gets one: a
        // read full of heartbeats is answered once, not with 3,000 20-byte frames, each costing
        // ten times its size queued (50 peers that never read made a provider 190 MB larger
        // within the unsent budgets, and stalled its other calls for seconds in GC).
        if (this.#writer.unsentBytes === 0) {
          this.#writer.write(encodeFrame(FrameType.HEARTBEAT_ACK, frame.requestId));
          this.#outbound.check();
        }
        return;
      case FrameType.HEARTBEAT_ACK:
      case FrameType.GOAWAY:
        if (this.#noop.spend()) this.#flooded();
        return;
      default:
        throw new RpcError(RpcCode.INTERNAL, `protocol error: a consumer may not send frame type ${frame.type}`);
    }
  }

  /** The consumer is past its budget of frames that do no work: told, then closed. */
  #flooded(): never {
    this.#onFlood?.();
    throw noopFlood('consumer');
  }

  #onRequest(frame: Frame): void {
    const id = frame.requestId;
    const serializer = this.#handler.serializers.byId(frame.serializer);
    if (serializer === undefined) {
      throw new RpcError(
        RpcCode.INTERNAL,
        `protocol error: unknown serializer id ${frame.serializer} (this provider speaks ${this.#handler.serializers.names().join(', ')})`,
      );
    }
    if (this.#running.has(id)) throw new RpcError(RpcCode.INTERNAL, `protocol error: request id ${id} is already in flight`);
    // An empty body is no request at all (not even a route to answer about): a framing fault,
    // like a bad magic, rather than a malformed call that gets an error answer.
    if (frame.body.length === 0) throw new RpcError(RpcCode.INTERNAL, `protocol error: REQUEST frame ${id} has an empty body`);
    const oneWay = (frame.flags & FrameFlag.ONE_WAY) !== 0;
    if (this.#closing) return this.#answerError(id, oneWay, goingAway());
    if (this.#running.size >= this.#limits.maxCallsPerConnection) {
      return this.#answerError(
        id,
        oneWay,
        new RpcError(RpcCode.RESOURCE_EXHAUSTED, `${this.#running.size} calls already run on this connection, its limit (maxCallsPerConnection)`, {
          retryAfterMs: 100,
          details: { neverSent: true },
        }),
      );
    }

    let head;
    try {
      head = this.#heads.decode(frame.body);
    } catch (error) {
      return this.#answerError(id, oneWay, RpcError.from(error, RpcCode.INVALID_ARGUMENT));
    }
    const resolved = this.#handler.resolve(head.head);
    if (resolved instanceof RpcError) return this.#answerError(id, oneWay, resolved);
    // Only a request that passed admission (the token check) turns load reports on: a peer
    // without a token learns nothing about this provider.
    if (!this.#loadWanted && head.head.meta[ACCEPT_LOAD_META] !== undefined) this.#loadWanted = true;
    const wantsStream = (frame.flags & FrameFlag.STREAM) !== 0;
    const wrongMode = checkMode(resolved, wantsStream);
    if (wrongMode !== undefined) return this.#answerError(id, oneWay, wrongMode);
    let window = DEFAULT_STREAM_WINDOW;
    if (wantsStream && head.head.meta[WINDOW_META] !== undefined) {
      window = Number(head.head.meta[WINDOW_META]);
      if (!Number.isInteger(window) || window < MIN_STREAM_WINDOW || window > 2 ** 31 - 1) {
        return this.#answerError(
          id,
          oneWay,
          new RpcError(
            RpcCode.INVALID_ARGUMENT,
            `metadata ${WINDOW_META} must be an integer from ${MIN_STREAM_WINDOW} to ${2 ** 31 - 1}, got ${JSON.stringify(head.head.meta[WINDOW_META]!.slice(0, 40))}`,
          ),
        );
      }
      window = providerWindow(window, this.#limits.maxStreamWindowBytes);
    }
    const target = { service: resolved.service, method: resolved.method, kind: 'request' } as const;
    const payload = ownPayload(frame.body.subarray(head.payloadOffset), serializer);
    // A deferred request was priced when it first arrived: pricing walks the whole payload.
    let cost = frame === this.#deferredPriced ? this.#deferredCost : -1;
    this.#deferredPriced = undefined;
    if (cost < 0) {
      try {
        cost = serializer.check?.(payload, target) ?? payload.length;
      } catch (error) {
        return this.#answerError(id, oneWay, decodeError(target, serializer, error));
      }
      // The call holds its route and metadata, and the provider's own objects for it, as long
      // as its decoded request: all of it is priced together.
      cost += headCost(head.payloadOffset, head.entries);
    }
    const alone = this.#running.size === 0;
    const decoded = this.#budgets?.decoded;
    if (decoded !== undefined && cost > decoded.limit && cost > FAIR_SHARE_BYTES) {
      // It could never run: waiting would hold the connection (and the waiters behind it) forever.
      return this.#answerError(
        id,
        oneWay,
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `${resolved.service}.${resolved.method}: the request would decode to about ${cost} bytes, more than this provider holds for all running calls together (maxTotalDecodedBytes ${decoded.limit})`,
        ),
      );
    }
    const fitsServer = decoded === undefined || decoded.used + cost <= decoded.limit || (alone && cost <= FAIR_SHARE_BYTES);
    if (!fitsServer || (this.#decodedBytes + cost > this.#limits.maxDecodedBytesPerConnection && !alone)) {
      // Backpressure: running calls hold the budget of decoded requests; this one is decoded
      // when enough is given back, and nothing more is read from the peer till then.
      this.#deferred = frame;
      this.#deferredPriced = frame;
      this.#deferredCost = cost;
      this.#gate.hold(Hold.DECODED);
      // The peer is not at fault while this side holds its requests: no idle timeout meanwhile.
      this.#socket.setTimeout(0);
      // Woken only once there is room for this request, so the waiting connections are not all
      // retried every time any call ends.
      if (!fitsServer) this.#withdrawDecodedWait = decoded!.wait(() => this.#retryDeferred(), cost);
      return;
    }
    let request: unknown;
    try {
      request = serializer.decode(payload, target);
    } catch (error) {
      return this.#answerError(id, oneWay, decodeError(target, serializer, error));
    }

    const callerDeadline = parseDeadline(head.head.meta[TIMEOUT_META]);
    if (callerDeadline instanceof RpcError) return this.#answerError(id, oneWay, callerDeadline);
    const deadline = callDeadline(resolved, callerDeadline);
    if (deadline instanceof RpcError) return this.#answerError(id, oneWay, deadline);
    const credit = wantsStream ? new StreamCredit(window) : undefined;
    const call = new TcpCall(this.#wire, this.#handler, resolved, id, oneWay, serializer, cost, credit, deadline, head.head.meta, this.#peer);
    this.#gate.started();
    this.#running.set(id, call);
    this.#decodedBytes += cost;
    this.#budgets?.decoded.charge(cost);
    if (deadline !== undefined) this.#deadlines.add(id, deadline);
    this.#starting.push({ call, request, stream: wantsStream });
    if (this.#starting.length === 1) queueMicrotask(this.#startCalls);
  }

  /**
   * Starts the calls whose requests the current read brought, once every frame of it has been
   * read: a CANCEL that came in the same read aborts its call before the method starts (see
   * ProviderCall.runUnary). A provider whose event loop was blocked (a long synchronous task, a
   * stop) reads each request together with its caller's CANCEL; started one by one as read,
   * every such call ran after its caller had given up.
   */
  readonly #startCalls = (): void => {
    const calls = this.#starting;
    this.#starting = [];
    for (const { call, request, stream } of calls) {
      if (stream) void call.runStream(request);
      else call.runUnary(request);
    }
  };

  /** A call ended, its answer (if any) written: its id, credit and decoded budget are released. */
  #ended(call: TcpCall): void {
    const cost = call.cost;
    this.#running.delete(call.id);
    this.#decodedBytes -= cost;
    this.#budgets?.decoded.charge(-cost);
    // After the answer and after the call left the running count: the report describes the
    // provider as the consumer's next pick will find it, not with this call still in it.
    this.#attachLoad();
    if (this.#deferred !== undefined) this.#retryDeferred();
    if (this.#running.size === 0) this.#onIdle?.();
  }

  /** A call ended: the deferred request may fit now; reading resumes once it is taken. */
  #retryDeferred(): void {
    this.#withdrawDecodedWait?.();
    this.#withdrawDecodedWait = undefined;
    const frame = this.#deferred;
    if (frame === undefined || this.#failed) return;
    this.#deferred = undefined;
    try {
      this.#onRequest(frame);
    } catch (error) {
      this.#fail(RpcError.from(error, RpcCode.INTERNAL));
      return;
    }
    if (this.#deferred === undefined) {
      this.#socket.setTimeout(this.#limits.idleTimeoutMs);
      this.#resume(Hold.DECODED);
    }
  }

  /** Writes a unary call's answer, unless nobody waits for it or the connection cannot take it. */
  #answer(call: TcpCall, value: unknown): void {
    const { id, serializer, method: resolved } = call;
    let payload: Uint8Array;
    try {
      payload = serializer.encode(value, call.target);
    } catch (error) {
      // A serializer's own RpcError already names the method and the reason (encode-failure.ts).
      const refused =
        error instanceof RpcError
          ? new RpcError(RpcCode.INTERNAL, error.rawMessage, { cause: error })
          : new RpcError(
              RpcCode.INTERNAL,
              `cannot encode the result of ${resolved.service}.${resolved.method} as ${serializer.name}: ${(error as Error).message}`,
            );
      this.#answerError(id, false, refused);
      return;
    }
    if (payload.length > this.#maxFrameBytes) {
      this.#answerError(id, false, oversizedMessage(`the answer of ${resolved.service}.${resolved.method}`, payload.length, this.#maxFrameBytes));
      return;
    }
    if (this.#writer.unsentBytes > DROP_ANSWERS_FACTOR * this.#limits.maxUnsentBytes) {
      this.#answerError(
        id,
        false,
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `the answer of ${resolved.service}.${resolved.method} (${payload.length} bytes) was dropped: ${this.#writer.unsentBytes} bytes wait unsent on this connection, over its limit (maxUnsentBytes ${this.#limits.maxUnsentBytes}); read the answers already sent`,
          { retryAfterMs: 1000 },
        ),
      );
      return;
    }
    const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    writeHeader(out, 0, FrameType.RESPONSE, 0, serializer.id, RpcCode.OK, id, payload.length);
    out.set(payload, HEADER_BYTES);
    this.#writer.write(out);
    this.#outbound.check();
    // A moving average of the answers' size sizes the slices of calls started per turn.
    this.#answerBytes = this.#answerBytes === 0 ? out.length : this.#answerBytes * 0.875 + out.length * 0.125;
    this.#gate.sizeSlices(SLICE_ANSWER_BYTES, this.#answerBytes);
  }

  /** Aborts a running call (cancel, deadline) and wakes its stream pump if it waits for credit. */
  #abortCall(id: number, reason: RpcError): void {
    const call = this.#running.get(id);
    call?.abort(reason);
    call?.credit?.release();
  }

  #answerError(id: number, oneWay: boolean, error: RpcError): void {
    if (oneWay) return;
    this.#writer.write(encodeErrorFrame(FrameType.RESPONSE, id, error));
    this.#outbound.check();
  }

  /**
   * Writes a LOAD frame after an answer, at most once per LOAD_REPORT_EVERY_MS on this
   * connection: every consumer that gets answers sees the provider's load as of its latest
   * answers, fresher than any registry report.
   */
  #attachLoad(): void {
    const report = this.#loadReport;
    if (report === undefined || !this.#loadWanted || this.#failed || this.#socket.destroyed) return;
    const now = monotonicNow();
    if (now - this.#loadSentAt < LOAD_REPORT_EVERY_MS) return;
    const body = report();
    if (body === undefined) return;
    this.#sendLoad(body, now);
  }

  /**
   * Sends the provider's load between answers (every LOAD_PUSH_EVERY_MS, on the server's timer)
   * to a consumer that reads LOAD frames and is routing to this provider now: the connection
   * carried something else — a request, a chunk, an answer — within LOAD_PUSH_RECENT_MS.
   * Pushes are not traffic of their own: a peer that hangs (or stops reading) gets none after
   * that, so they never keep its connection from the idle timeout. Never onto a connection with
   * bytes still queued in this process (its consumer is behind). An idle connection costs
   * nothing; an active one, a frame of at most MAX_LOAD_REPORT_BYTES per interval.
   */
  pushLoad(): void {
    const report = this.#loadReport;
    if (report === undefined || !this.#loadWanted) return;
    if (this.#failed || this.#closing || this.#socket.destroyed || this.#writer.unsentBytes > 0) return;
    const now = monotonicNow();
    const traffic = this.#socket.bytesRead + this.#writer.frames - this.#pushes;
    if (traffic !== this.#traffic) {
      this.#traffic = traffic;
      this.#trafficAt = now;
    } else if (now - this.#trafficAt > LOAD_PUSH_RECENT_MS) return;
    // An answer's report went out in the last half interval already (half: the timer's own
    // jitter must not skip every other push).
    if (now - this.#loadSentAt < LOAD_PUSH_EVERY_MS / 2) return;
    const body = report();
    if (body === undefined) return;
    this.#pushes++;
    this.#sendLoad(body, now);
  }

  #sendLoad(body: Uint8Array, now: number): void {
    this.#loadSentAt = now;
    this.#writer.write(encodeFrame(FrameType.LOAD, 0, body, { serializer: SerializerId.JSON }));
    this.#outbound.check();
  }

  /**
   * Ends every running call with an answer that says the provider shut down under it, then
   * aborts it as a call whose caller has gone (its handler's signal fires; nothing more is
   * written for it). The caller may not assume the call did nothing: it ran for the drain time.
   */
  #cutRunning(drainTimeoutMs: number): void {
    for (const [id, call] of [...this.#running]) {
      const { service, method, stream } = call.method;
      const cut = new RpcError(
        RpcCode.UNAVAILABLE,
        `${service}.${method} was cut off: the provider shut down and its drain time (drainTimeoutMs ${drainTimeoutMs} ms) ran out before the call finished`,
      );
      if (stream) this.#wire.write(encodeErrorFrame(FrameType.STREAM_END, id, cut), true);
      else this.#answerError(id, call.oneWay, cut);
      this.#abortCall(id, new RpcError(RpcCode.UNAVAILABLE, cut.rawMessage, { details: { callerLeft: true } }));
    }
  }

  #abortAll(reason: string): void {
    for (const id of [...this.#running.keys()]) this.#abortCall(id, new RpcError(RpcCode.CANCELLED, reason, { details: { callerLeft: true } }));
  }
}

/**
 * Turns the caller's remaining time into a local absolute deadline. The wire carries a relative
 * timeout, as gRPC's grpc-timeout does, so that clock skew between machines cannot expire a call
 * early or late. The value is a decimal integer: digits only (no sign, exponent, hex or
 * spaces, which Number() would take), at most Number.MAX_SAFE_INTEGER.
 */
function parseDeadline(value: string | undefined): number | RpcError | undefined {
  if (value === undefined) return undefined;
  let ms = value.length === 0 || value.length > 16 ? -1 : 0;
  for (let i = 0; i < value.length && ms >= 0; i++) {
    const digit = value.charCodeAt(i) - 48;
    ms = digit >= 0 && digit <= 9 ? ms * 10 + digit : -1;
  }
  if (ms < 0 || ms > Number.MAX_SAFE_INTEGER) {
    return new RpcError(
      RpcCode.INVALID_ARGUMENT,
      `metadata ${TIMEOUT_META} must be a decimal integer of milliseconds from 0 to ${Number.MAX_SAFE_INTEGER} (digits only), got ${JSON.stringify(value.slice(0, 40))}`,
    );
  }
  return monotonicNow() + ms;
}
