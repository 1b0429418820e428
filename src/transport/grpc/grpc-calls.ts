import grpc from '@grpc/grpc-js';
import { MAX_TIMER_MS } from '../../common/validate.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { Serializer } from '../../serializer/serializer.js';
import { neverSent } from '../call-limits.js';
import { LazyAbort } from '../lazy-abort.js';
import type { CallHandler, ProviderCallInfo, ResolvedMethod } from '../transport.js';
import type { Peer } from '../../call/invocation.js';
import type { GrpcRoute } from './codec.js';
import type { GrpcSettings } from './settings.js';
import { GROUP_HEADER, LOAD_TRAILER, RESULT_TRAILER, VERSION_HEADER, errorToStatus, fromGrpcMetadata } from './status.js';
import type { UnsentBudget } from './unsent-budget.js';

/*
 * The calls of the grpc transport's provider side: each registered route resolves, decodes and
 * runs one shuttle method, and answers within the connection's unsent-bytes budget.
 */

const identity = (bytes: Buffer): Buffer => bytes;

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

  constructor(budget: UnsentBudget, loadReport?: (answering?: 0 | 1) => Uint8Array | undefined) {
    this.budget = budget;
    this.#loadReport = loadReport;
  }

  /**
   * Trailers carrying the provider's load report (`shuttle-load`, the JSON of a load snapshot),
   * as the tcp transport's LOAD frame does; every answer carries one (gRPC sends trailers
   * anyway, and the report's bytes are made at most once per 10 ms by the server).
   */
  loadTrailers(trailers = new grpc.Metadata()): grpc.Metadata {
    // The call this answers still counts as running while its trailers are made.
    const report = this.#loadReport?.(1);
    if (report === undefined) return trailers;
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

  started(): void {
    this.#running++;
  }

  finished(): void {
    if (--this.#running > 0) return;
    for (const wake of this.#onIdle.splice(0)) wake();
  }

  /** Resolves once no call runs, or at `until` (a Date.now() time), whichever is first. */
  async idle(until: number): Promise<void> {
    if (this.#running === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#onIdle.push(resolve);
      timer = setTimeout(resolve, Math.max(0, until - Date.now()));
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
          (call: grpc.ServerWritableStream<Buffer, Buffer>) => serveStream(call, route, handler, state),
          identity,
          identity,
          'serverStream',
        );
      } else {
        server.register(
          route.path,
          (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => serveUnary(call, callback, route, handler, state),
          identity,
          identity,
          'unary',
        );
      }
    }
  }
}

/** A call accepted for running: its method, request, limits and cancellation. */
interface Started {
  readonly resolved: ResolvedMethod;
  readonly request: unknown;
  readonly serializer: Serializer | undefined;
  readonly info: ProviderCallInfo;
  readonly abort: LazyAbort;
  /** Clears the deadline timer and the cancel listener; call once when the call is over. */
  readonly finish: () => void;
}

type ServerCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>;

/**
 * Resolves, decodes and arms one call: the deadline is the earlier of the caller's
 * grpc-timeout and the method's own limit; a cancel (RST_STREAM) from the caller aborts it.
 * `onDeadline` runs when the deadline passes first.
 */
function start(
  call: ServerCall,
  route: GrpcRoute,
  stream: boolean,
  handler: CallHandler,
  state: ServingState,
  onDeadline: (error: RpcError) => void,
): Started | RpcError {
  if (state.closing) return neverSent('provider is going away');
  // A connection whose peer does not read what it was sent gets no new work to answer: refused
  // before it runs (safe to retry once the peer reads), as tcp stops reading such a connection.
  const from = call.getPeer();
  if (!state.budget.open(from)) return unsentRefusal(state.budget.held(from), state.budget.limit, true);
  const meta = fromGrpcMetadata(call.metadata);
  const header = (key: string): string => {
    const value = call.metadata.get(key)[0];
    return typeof value === 'string' ? value : '';
  };
  const resolved = handler.resolve({ service: route.service, version: header(VERSION_HEADER), group: header(GROUP_HEADER), method: route.method, meta });
  if (resolved instanceof RpcError) return resolved;
  if (resolved.stream !== stream) {
    return new RpcError(
      RpcCode.FAILED_PRECONDITION,
      `${resolved.service}.${resolved.method} is ${resolved.stream ? 'server-streaming' : 'unary'} in this version; call it as such`,
    );
  }
  let decoded: { value: unknown; serializer: Serializer | undefined };
  try {
    decoded = route.decodeRequest(call.request, handler.serializers);
  } catch (error) {
    return RpcError.from(error, RpcCode.INVALID_ARGUMENT);
  }
  const now = Date.now();
  const callerDeadline = Number(call.getDeadline());
  const deadline = earliest(
    Number.isFinite(callerDeadline) ? callerDeadline : undefined,
    resolved.timeoutMs === undefined ? undefined : now + resolved.timeoutMs,
  );
  if (deadline !== undefined && deadline <= now) {
    return new RpcError(RpcCode.DEADLINE_EXCEEDED, `${resolved.service}.${resolved.method} arrived after its deadline; not started`);
  }
  const abort = new LazyAbort(deadline);
  const timer =
    deadline === undefined
      ? undefined
      : setTimeout(
          () => {
            const error = new RpcError(RpcCode.DEADLINE_EXCEEDED, `${resolved.service}.${resolved.method} did not complete before its deadline`);
            abort.abort(error);
            onDeadline(error);
          },
          Math.min(deadline - now, MAX_TIMER_MS),
        );
  const onCancelled = (): void => abort.abort(new RpcError(RpcCode.CANCELLED, 'cancelled by the caller', { details: { callerLeft: true } }));
  call.once('cancelled', onCancelled);
  state.started();
  const peer = parsePeer(call.getPeer());
  return {
    resolved,
    request: decoded.value,
    serializer: decoded.serializer,
    abort,
    info: {
      get signal() {
        return abort.signal;
      },
      deadline,
      meta,
      peer,
    },
    finish: () => {
      clearTimeout(timer);
      call.off('cancelled', onCancelled);
      state.finished();
    },
  };
}

function serveUnary(
  call: grpc.ServerUnaryCall<Buffer, Buffer>,
  callback: grpc.sendUnaryData<Buffer>,
  route: GrpcRoute,
  handler: CallHandler,
  state: ServingState,
): void {
  let answered = false;
  const answer = (error: RpcError | null, bytes?: Buffer): void => {
    if (answered) return;
    answered = true;
    if (error === null) callback(null, bytes, state.loadTrailers());
    else callback(errorToStatus(error) as grpc.ServerErrorResponse);
  };
  const started = start(call, route, false, handler, state, (error) => answer(error));
  if (started instanceof RpcError) return answer(started);
  started.resolved
    .invoke(started.request, started.info)
    .then(
      (value) => {
        if (started.abort.aborted) return;
        // Closed to new work while this call ran: refused without the cost of encoding.
        const peer = call.getPeer();
        if (!state.budget.open(peer)) return answer(unsentRefusal(state.budget.held(peer), state.budget.limit));
        let bytes: Buffer;
        try {
          bytes = route.encodeResponse(value, started.serializer);
        } catch (error) {
          return answer(new RpcError(RpcCode.INTERNAL, `cannot encode the result of ${route.service}.${route.method}: ${(error as Error).message}`));
        }
        if (!state.budget.fits(peer, bytes.length)) return answer(unsentRefusal(state.budget.held(peer), state.budget.limit));
        // Held until the call is over: grpc-js says 'cancelled' once the answer is written out
        // (its trailers go) or the stream is torn down, whichever comes first.
        const hold = state.budget.hold(peer);
        call.once('cancelled', () => hold.close());
        hold.take(bytes.length);
        answer(null, bytes);
      },
      (error: unknown) => {
        const failure = handler.toCallerError?.(started.resolved, error) ?? RpcError.from(error);
        // After a cancel the caller has stopped listening; the error has nowhere to go.
        if (!started.abort.callerLeft) answer(failure);
      },
    )
    .finally(started.finish);
}

/**
 * Drives a streaming handler: pulls a value only when grpc-js's write buffer has room (HTTP/2
 * flow control behind it), writes each one at once, and ends with OK plus the generator's
 * return value as the `shuttle-trailer-bin` trailer. On cancel or deadline it stops pulling and
 * calls the generator's `return()`, so the handler's `finally` blocks run.
 */
async function serveStream(call: grpc.ServerWritableStream<Buffer, Buffer>, route: GrpcRoute, handler: CallHandler, state: ServingState): Promise<void> {
  let ended = false;
  const fail = (error: RpcError): void => {
    if (ended) return;
    ended = true;
    call.emit('error', errorToStatus(error));
  };
  let wake: (() => void) | undefined;
  const started = start(call, route, true, handler, state, (error) => {
    fail(error);
    wake?.();
  });
  if (started instanceof RpcError) return fail(started);
  const onCancelled = (): void => wake?.();
  call.on('cancelled', onCancelled);
  const { resolved, abort, serializer } = started;
  const peer = call.getPeer();
  const hold = state.budget.hold(peer);
  call.once('cancelled', () => hold.close());
  let iterator: AsyncIterator<unknown> | undefined;
  let finished = false;
  try {
    const iterable = (await resolved.invoke(started.request, started.info)) as AsyncIterable<unknown>;
    if (iterable === null || typeof iterable !== 'object' || typeof iterable[Symbol.asyncIterator] !== 'function') {
      throw new RpcError(
        RpcCode.INTERNAL,
        `${route.service}.${route.method} is declared stream: true but did not return an async iterable (use an async generator method)`,
      );
    }
    iterator = iterable[Symbol.asyncIterator]();
    for (;;) {
      // Pull nothing more while this connection holds its budget of unsent bytes.
      if (!state.budget.open(peer)) await state.budget.room(peer, abort.signal);
      if (abort.aborted) break;
      const step = await iterator.next();
      if (abort.aborted) break;
      if (step.done === true) {
        finished = true;
        const trailers = state.loadTrailers();
        if (step.value !== undefined) trailers.set(RESULT_TRAILER, route.encodeTrailer(step.value, serializer));
        ended = true;
        call.end(trailers);
        return;
      }
      const bytes = route.encodeResponse(step.value, serializer);
      if (!call.write(bytes, hold.take(bytes.length))) {
        let onDrain!: () => void;
        await new Promise<void>((resolve) => {
          onDrain = resolve;
          wake = resolve;
          call.once('drain', resolve);
        });
        call.off('drain', onDrain);
        wake = undefined;
      }
    }
  } catch (error) {
    if (!abort.aborted) {
      finished = true;
      fail(handler.toCallerError?.(resolved, error) ?? RpcError.from(error));
    }
  } finally {
    call.off('cancelled', onCancelled);
    if (!finished) await iterator?.return?.().catch(() => {});
    started.finish();
  }
}

/** The refusal of a call, or of its answer, on a connection over its unsent-bytes budget. */
function unsentRefusal(held: number, limit: number, beforeRunning = false): RpcError {
  const message = `provider holds ${held} bytes of answers this connection has not read; more would pass its limit (maxUnsentBytes ${limit}): read them first`;
  return new RpcError(RpcCode.RESOURCE_EXHAUSTED, message, beforeRunning ? { details: { neverSent: true } } : {});
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
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
