import grpc from '@grpc/grpc-js';
import { DeadlineHeap, liveDeadlines } from '../../common/deadline-heap.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { Serializer } from '../../serializer/serializer.js';
import type { Metadata, Peer } from '../../call/invocation.js';
import { deadlineError } from '../call-limits.js';
import { ProviderCall, callDeadline, checkMode, goingAway } from '../provider-call.js';
import { LOAD_REPORT_EVERY_MS, type CallHandler, type ResolvedMethod } from '../transport.js';
import type { GrpcRoute } from './codec.js';
import type { GrpcSettings } from './settings.js';
import { GROUP_HEADER, KIND_HEADER, LOAD_TRAILER, RESULT_TRAILER, VERSION_HEADER, errorToStatus, fromGrpcMetadata } from './status.js';
import type { UnsentBudget } from './unsent-budget.js';
import { oversizedMessage } from '../tcp/wire-error.js';
import { fromWallTime, monotonicNow } from '../../common/clock.js';
import { MAX_TIMER_MS } from '../../common/validate.js';

/*
 * The calls of the grpc transport's provider side: each registered route resolves, decodes and
 * runs one shuttle method, and answers within the connection's unsent-bytes budget.
 */

const identity = (bytes: Buffer): Buffer => bytes;
const ignore = (): void => {};

/** What every call of one server shares. */
export class ServingState {
  #running = 0;
  #onIdle: (() => void)[] = [];
  /** Set by close(): calls arriving now are refused UNAVAILABLE (never run, safe to retry). */
  closing = false;
  /** Answer bytes each connection has queued and not yet sent. */
  readonly budget: UnsentBudget;
  readonly #loadReport: ((answering?: 0 | 1) => Uint8Array | undefined) | undefined;
  #reportBytes: Uint8Array | undefined;
  #reportText = '';
  /** When each connection, by peer address, last got a load report. */
  readonly #reportedAt = new Map<string, number>();
  #prunedAt = 0;
  /**
   * Running calls with a deadline, by a number of their own, and one timer for all of them
   * (grpc-js does not enforce a server's deadline): a setTimeout per call was a timer-list insert
   * and a Timeout object per call in the provider's profile, as on the tcp transport.
   */
  readonly #timed = new Map<number, { readonly deadline: number; readonly expire: () => void }>();
  #nextTimed = 0;
  readonly #deadlines = new DeadlineHeap({
    deadlineOf: (id) => this.#timed.get(id)?.deadline,
    live: () => liveDeadlines(this.#timed),
    liveCount: () => this.#timed.size,
    expire: (id) => {
      const timed = this.#timed.get(id);
      this.#timed.delete(id);
      timed?.expire();
    },
  });
  /** The last peer name parsed: the calls of one connection arrive together. */
  #peerName: string | undefined;
  #peer: Peer = { address: '', port: 0 };

  /** The largest message a consumer accepts (its grpc-js max_receive_message_length). */
  readonly maxFrameBytes: number;

  /**
   * @param deadlineOf a call's deadline on the `monotonicNow()` clock by its request metadata,
   *   as read when grpc-js stated it (the request budget's interceptor); undefined: none known
   */
  /**
   * How long a call waits for room on a connection that sends none of the answers it holds
   * before it is refused (`frameTimeoutMs`): the peer has stopped reading.
   */
  readonly stallMs: number;

  constructor(
    budget: UnsentBudget,
    maxFrameBytes: number,
    loadReport?: (answering?: 0 | 1) => Uint8Array | undefined,
    deadlineOf?: (metadata: grpc.Metadata) => number | undefined,
    stallMs = 10_000,
  ) {
    this.budget = budget;
    this.stallMs = stallMs;
    this.maxFrameBytes = maxFrameBytes;
    this.#loadReport = loadReport;
    this.deadlineOf = deadlineOf ?? (() => undefined);
  }

  /** A call's deadline on the `monotonicNow()` clock, if it was read when grpc-js stated it. */
  readonly deadlineOf: (metadata: grpc.Metadata) => number | undefined;

  /**
   * Trailers carrying the provider's load report (`shuttle-load`, the JSON of a load snapshot),
   * as the tcp transport's LOAD frame does: on an answer or a stream's end, at most once per
   * LOAD_REPORT_EVERY_MS on each connection (`peer`): one on every answer would cost the
   * provider 6 % and the consumer 10 % of their CPU per call with 32 unary calls in flight, and
   * the report's bytes change at most once per 10 ms anyway.
   */
  loadTrailers(peer: string, trailers = new grpc.Metadata()): grpc.Metadata {
    if (this.#loadReport === undefined) return trailers;
    const now = monotonicNow();
    const last = this.#reportedAt.get(peer);
    if (last !== undefined && now - last < LOAD_REPORT_EVERY_MS) return trailers;
    // The call this answers still counts as running while its trailers are made.
    const report = this.#loadReport(1);
    if (report === undefined) return trailers;
    if (this.#reportedAt.size >= 1024 && now - this.#prunedAt >= LOAD_REPORT_EVERY_MS) {
      // Connections that were due anyway are forgotten (they get the next report), at most once
      // an interval, so a server answering more than 1,024 connections does not scan them all on
      // every answer: the map holds 1,024 plus the connections answered since the last pruning.
      this.#prunedAt = now;
      for (const [key, at] of this.#reportedAt) if (now - at >= LOAD_REPORT_EVERY_MS) this.#reportedAt.delete(key);
    }
    this.#reportedAt.set(peer, now);
    // The same bytes are handed out for 10 ms: decode them to the header's text once.
    if (report !== this.#reportBytes) {
      this.#reportBytes = report;
      this.#reportText = Buffer.from(report.buffer, report.byteOffset, report.length).toString('utf8');
    }
    trailers.set(LOAD_TRAILER, this.#reportText);
    return trailers;
  }

  get running(): number {
    return this.#running;
  }

  /** Calls `expire` at `deadline` (a `monotonicNow()` time) unless {@link untime} is called with the id returned first. */
  time(deadline: number, expire: () => void): number {
    const id = ++this.#nextTimed;
    this.#timed.set(id, { deadline, expire });
    this.#deadlines.add(id, deadline);
    return id;
  }

  untime(id: number): void {
    this.#timed.delete(id);
  }

  /** grpc-js's peer name (`ipv4:host:port`) as an address and a port. */
  peerOf(name: string): Peer {
    if (name !== this.#peerName) {
      this.#peerName = name;
      this.#peer = parsePeer(name);
    }
    return this.#peer;
  }

  started(): void {
    this.#running++;
  }

  finished(): void {
    if (--this.#running > 0) return;
    for (const wake of this.#onIdle.splice(0)) wake();
  }

  /** Resolves once no call runs, or at `until` (a monotonicNow() time), whichever is first. */
  async idle(until: number): Promise<void> {
    if (this.#running === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#onIdle.push(resolve);
      timer = setTimeout(resolve, Math.max(0, until - monotonicNow()));
    });
    clearTimeout(timer);
  }
}

/**
 * Registers every method at its gRPC path up front (see codec.ts for the path and body rules);
 * unknown paths get grpc-js's own UNIMPLEMENTED.
 */
export function registerRoutes(server: grpc.Server, handler: CallHandler, settings: GrpcSettings, state: ServingState): void {
  for (const served of handler.services()) {
    for (const method of served.methods) {
      const route = settings.routes.route(served.service, method.name);
      // A service described by the .proto is served as the .proto says: a method it does not
      // declare is not reachable over gRPC (it still is over tcp).
      if (route === undefined) continue;
      if (route.protoStream !== undefined && route.protoStream !== method.stream) {
        throw new TypeError(
          `shuttle-rpc: ${served.service}.${method.name} is ${method.stream ? 'server-streaming' : 'unary'} but the .proto declares ${route.path} ${route.protoStream ? 'server-streaming' : 'unary'}`,
        );
      }
      // Versions and groups of one service share a path; the headers pick one at call time.
      if (method.stream) {
        server.register(
          route.path,
          // Taken up on the next turn (see serveUnary).
          (call: grpc.ServerWritableStream<Buffer, Buffer>) => void setImmediate(serveStream, call, route, handler, state),
          identity,
          identity,
          'serverStream',
        );
      } else {
        server.register(
          route.path,
          (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
            void setImmediate(serveUnary, call, callback, route, handler, state),
          identity,
          identity,
          'unary',
        );
      }
    }
  }
}

type ServerCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>;

/**
 * The wire's side of the shared pipeline (provider-call.ts) up to the start of a call: refused
 * while closing or while the connection holds its budget of unsent answers (callers wait for
 * room first, {@link afterRoom}); resolved from the
 * path and the version and group headers; decoded by the route; its deadline the earlier of the
 * caller's grpc-timeout and the method's own limit.
 */
function accept(call: ServerCall, route: GrpcRoute, stream: boolean, handler: CallHandler, state: ServingState): Accepted | RpcError {
  if (state.closing) return goingAway();
  const from = call.getPeer();
  if (!state.budget.open(from)) return unsentRefusal(state.budget.held(from), state.budget.limit, true);
  const meta = fromGrpcMetadata(call.metadata);
  const header = (key: string): string => {
    const value = call.metadata.get(key)[0];
    return typeof value === 'string' ? value : '';
  };
  const method = handler.resolve({ service: route.service, version: header(VERSION_HEADER), group: header(GROUP_HEADER), method: route.method, meta });
  if (method instanceof RpcError) return method;
  // A shuttle consumer says how it will read the answer; other gRPC clients are taken at the
  // path's kind.
  const declared = header(KIND_HEADER);
  const wrongMode = checkMode(method, declared === 'unary' ? false : declared === 'stream' ? true : stream);
  if (wrongMode !== undefined) return wrongMode;
  let decoded: { value: unknown; serializer: Serializer | undefined };
  try {
    decoded = route.decodeRequest(call.request, handler.serializers);
  } catch (error) {
    return RpcError.from(error, RpcCode.INVALID_ARGUMENT);
  }
  const callerDeadline = callerDeadlineOf(call, state);
  const deadline = callDeadline(method, callerDeadline);
  if (deadline instanceof RpcError) return deadline;
  return { method, request: decoded.value, serializer: decoded.serializer, deadline, meta, from, peer: state.peerOf(from) };
}

/**
 * The caller's deadline on the `monotonicNow()` clock, or undefined for none. grpc-js states it
 * on the wall clock (now + grpc-timeout on arrival); the request budget put it on the monotonic
 * clock at that moment. Converted here only without it: a step of the wall clock since arrival
 * would move it.
 */
function callerDeadlineOf(call: ServerCall, state: ServingState): number | undefined {
  const wallDeadline = Number(call.getDeadline());
  return Number.isFinite(wallDeadline) ? (state.deadlineOf(call.metadata) ?? fromWallTime(wallDeadline)) : undefined;
}

/** A call that passed {@link accept}. */
interface Accepted {
  readonly method: ResolvedMethod;
  readonly request: unknown;
  readonly serializer: Serializer | undefined;
  readonly deadline: number | undefined;
  readonly meta: Metadata;
  /** grpc-js's name of the peer (the key of its unsent-bytes budget). */
  readonly from: string;
  readonly peer: Peer;
}

/**
 * A provider call on the grpc transport: the shared {@link ProviderCall} with grpc-js's call,
 * its deadline timer (grpc-js does not enforce a server's deadline) and the caller's cancel.
 */
abstract class GrpcCall<C extends ServerCall> extends ProviderCall {
  protected readonly call: C;
  protected readonly route: GrpcRoute;
  protected readonly state: ServingState;
  protected readonly serializer: Serializer | undefined;
  protected readonly from: string;
  /** The call's entry in the server's deadline timer, or 0 for none. */
  readonly #timed: number;
  readonly #onCancelled: () => void;

  /**
   * A message the consumer would refuse (its grpc-js stops at maxFrameBytes, the same default
   * on both sides, and says only "Received message larger than max"): failed here instead,
   * naming the method and the limit.
   */
  protected oversized(what: string, bytes: number): RpcError {
    return oversizedMessage(`${what} of ${this.route.service}.${this.route.method}`, bytes, this.state.maxFrameBytes);
  }

  constructor(call: C, route: GrpcRoute, handler: CallHandler, state: ServingState, accepted: Accepted) {
    super(handler, accepted.method, accepted.deadline, accepted.meta, accepted.peer);
    this.call = call;
    this.route = route;
    this.state = state;
    this.serializer = accepted.serializer;
    this.from = accepted.from;
    const { deadline } = accepted;
    this.#timed =
      deadline === undefined
        ? 0
        : state.time(deadline, () => {
            const error = deadlineError(this.method);
            this.abort(error);
            this.fail(error);
            this.woken();
          });
    this.#onCancelled = () => {
      this.abort(new RpcError(RpcCode.CANCELLED, 'cancelled by the caller', { details: { callerLeft: true } }));
      this.woken();
    };
    call.once('cancelled', this.#onCancelled);
    // Cancelled already (its RST_STREAM read before the call was started): never started.
    if (call.cancelled) this.#onCancelled();
    state.started();
  }

  /** The call was aborted: wake whatever it waits for. */
  protected woken(): void {}

  protected ended(): void {
    if (this.#timed !== 0) this.state.untime(this.#timed);
    this.call.off('cancelled', this.#onCancelled);
    this.state.finished();
  }
}

class GrpcUnaryCall extends GrpcCall<grpc.ServerUnaryCall<Buffer, Buffer>> {
  readonly #callback: grpc.sendUnaryData<Buffer>;
  #answered = false;

  constructor(
    call: grpc.ServerUnaryCall<Buffer, Buffer>,
    callback: grpc.sendUnaryData<Buffer>,
    route: GrpcRoute,
    handler: CallHandler,
    state: ServingState,
    accepted: Accepted,
  ) {
    super(call, route, handler, state, accepted);
    this.#callback = callback;
  }

  protected answer(value: unknown): void {
    if (this.#answered) return;
    const { state, from } = this;
    let bytes: Buffer;
    try {
      bytes = this.route.encodeResponse(value, this.serializer);
    } catch (error) {
      // A serializer's own RpcError already names the method and the reason (encode-failure.ts).
      if (error instanceof RpcError) return this.fail(new RpcError(RpcCode.INTERNAL, error.rawMessage, { cause: error }));
      return this.fail(new RpcError(RpcCode.INTERNAL, `cannot encode the result of ${this.route.service}.${this.route.method}: ${(error as Error).message}`));
    }
    if (bytes.length > state.maxFrameBytes) return this.fail(this.oversized('the answer', bytes.length));
    if (!state.budget.fits(from, bytes.length)) return this.fail(unsentRefusal(state.budget.held(from), state.budget.limit));
    // Held until the call is over: grpc-js says 'cancelled' once the answer is written out
    // (its trailers go) or the stream is torn down, whichever comes first.
    const hold = state.budget.hold(from);
    this.call.once('cancelled', () => hold.close());
    hold.take(bytes.length);
    this.#answered = true;
    this.#callback(null, bytes, state.loadTrailers(this.from));
  }

  protected fail(error: RpcError): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#callback(errorToStatus(error) as grpc.ServerErrorResponse);
  }
}

/**
 * A stream: pulls a value only when grpc-js's write buffer has room (HTTP/2 flow control behind
 * it) and the connection is within its unsent budget, and ends with OK plus the generator's
 * return value as the `shuttle-trailer-bin` trailer.
 */
class GrpcStreamCall extends GrpcCall<grpc.ServerWritableStream<Buffer, Buffer>> {
  readonly #hold: ReturnType<UnsentBudget['hold']>;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(call: grpc.ServerWritableStream<Buffer, Buffer>, route: GrpcRoute, handler: CallHandler, state: ServingState, accepted: Accepted) {
    super(call, route, handler, state, accepted);
    const hold = state.budget.hold(this.from);
    call.once('cancelled', () => hold.close());
    this.#hold = hold;
  }

  protected answer(): void {
    throw new RpcError(RpcCode.INTERNAL, `${this.route.service}.${this.route.method} is a stream`);
  }

  protected fail(error: RpcError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.call.emit('error', errorToStatus(error));
  }

  protected override woken(): void {
    this.#wake?.();
  }

  protected override room(): Promise<void> | undefined {
    // Pull nothing more while this connection holds its budget of unsent bytes.
    return this.state.budget.open(this.from) ? undefined : this.state.budget.room(this.from, this.signal).then(ignore);
  }

  /**
   * The value pulled is written even when the connection filled its budget meanwhile: its
   * first write sends the stream's headers, and the hold counts it (one chunk a stream at most).
   */
  protected override roomToWrite(): undefined {
    return undefined;
  }

  protected override chunk(value: unknown): Promise<void> | undefined {
    const bytes = this.route.encodeResponse(value, this.serializer);
    if (bytes.length > this.state.maxFrameBytes) throw this.oversized('a chunk', bytes.length);
    if (this.call.write(bytes, this.#hold.take(bytes.length))) return undefined;
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.call.off('drain', done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      this.call.once('drain', done);
    });
  }

  protected override end(value: unknown): void {
    const trailers = this.state.loadTrailers(this.from);
    if (value !== undefined) trailers.set(RESULT_TRAILER, this.route.encodeTrailer(value, this.serializer));
    this.#ended = true;
    this.call.end(trailers);
  }
}

/*
 * A call is taken up (serveUnary, serveStream) on the turn after it arrived (setImmediate, where
 * the server registers its routes), once HTTP/2 has delivered what the same read carried: a
 * caller's RST_STREAM behind its request then aborts the call before its method starts
 * (ProviderCall.runUnary). After a provider's event loop was blocked,
 * each request arrives with its caller's cancel behind it; started at once, every such
 * non-idempotent call ran after its caller had been told DEADLINE_EXCEEDED. A microtask is too
 * soon: grpc-js reports the cancel later in the same turn. The whole of it waits, the check for
 * room on the connection included: the calls of one read are then taken up one immediate after
 * another, each after the answers of those before it are queued, so a burst of large answers
 * finds the connection's budget as it fills (checked at arrival, all of a burst found it empty).
 */
function serveUnary(
  call: grpc.ServerUnaryCall<Buffer, Buffer>,
  callback: grpc.sendUnaryData<Buffer>,
  route: GrpcRoute,
  handler: CallHandler,
  state: ServingState,
): void {
  if (!state.closing && !state.budget.open(call.getPeer())) {
    void afterRoom(call, state).then((refusal) => {
      if (refusal === undefined) serveUnary(call, callback, route, handler, state);
      else if (refusal !== null) callback(errorToStatus(refusal) as grpc.ServerErrorResponse);
    });
    return;
  }
  const accepted = accept(call, route, false, handler, state);
  if (accepted instanceof RpcError) return callback(errorToStatus(accepted) as grpc.ServerErrorResponse);
  new GrpcUnaryCall(call, callback, route, handler, state, accepted).runUnary(accepted.request);
}

async function serveStream(call: grpc.ServerWritableStream<Buffer, Buffer>, route: GrpcRoute, handler: CallHandler, state: ServingState): Promise<void> {
  if (!state.closing && !state.budget.open(call.getPeer())) {
    const refusal = await afterRoom(call, state);
    if (refusal === null) return;
    if (refusal !== undefined) return void call.emit('error', errorToStatus(refusal));
    return serveStream(call, route, handler, state);
  }
  const accepted = accept(call, route, true, handler, state);
  if (accepted instanceof RpcError) {
    call.emit('error', errorToStatus(accepted));
    return;
  }
  return new GrpcStreamCall(call, route, handler, state, accepted).runStream(accepted.request);
}

/**
 * A call that arrived on a connection holding its budget of unsent answers waits, before it
 * runs, until the connection has room — as tcp stops reading such a connection, so that a
 * consumer that keeps more large answers in flight than the budget holds is slowed, not failed.
 * Resolves undefined once there is room; null when the caller left; an error when the call's
 * deadline passed, or when the connection sent none of what it holds for `stallMs` (its peer
 * does not read: refused before running, safe to retry).
 */
async function afterRoom(call: ServerCall, state: ServingState): Promise<RpcError | undefined | null> {
  const from = call.getPeer();
  const waiting = new AbortController();
  const onCancelled = (): void => waiting.abort();
  call.once('cancelled', onCancelled);
  const deadline = callerDeadlineOf(call, state);
  let expired = false;
  // A deadline beyond what a timer can hold is no deadline for this wait: setTimeout would fire
  // at once (grpc-js keeps its own timer within that range today).
  const timer =
    deadline === undefined || deadline - monotonicNow() > MAX_TIMER_MS
      ? undefined
      : setTimeout(
          () => {
            expired = true;
            waiting.abort();
          },
          Math.max(0, deadline - monotonicNow()),
        );
  try {
    if (await state.budget.room(from, waiting.signal, state.stallMs)) return undefined;
    if (call.cancelled) return null;
    if (expired) return new RpcError(RpcCode.DEADLINE_EXCEEDED, 'the deadline passed while the call waited for this connection to read the answers it holds');
    return unsentRefusal(state.budget.held(from), state.budget.limit, true, state.stallMs);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    call.off('cancelled', onCancelled);
  }
}

/**
 * The refusal of a call, or of its answer, on a connection over its unsent-bytes budget;
 * `stalledMs`: the call waited that long without the connection sending any of it.
 */
function unsentRefusal(held: number, limit: number, beforeRunning = false, stalledMs?: number): RpcError {
  const stalled = stalledMs === undefined ? '' : `, none of them read for ${stalledMs} ms (frameTimeoutMs)`;
  const message = `provider holds ${held} bytes of answers this connection has not read${stalled}; more would pass its limit (maxUnsentBytes ${limit}): read them first`;
  return new RpcError(RpcCode.RESOURCE_EXHAUSTED, message, beforeRunning ? { details: { neverSent: true } } : {});
}

/** grpc-js names peers `host:port`, `[v6]:port` or `ipv4:host:port`. */
function parsePeer(peer: string): Peer {
  const at = peer.lastIndexOf(':');
  if (at < 0) return { address: peer, port: 0 };
  const host = peer
    .slice(0, at)
    .replace(/^ipv[46]:/, '')
    .replace(/^\[(.*)\]$/, '$1');
  return { address: host, port: Number(peer.slice(at + 1)) || 0 };
}
