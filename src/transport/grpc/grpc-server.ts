import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { MAX_TIMER_MS } from '../../common/validate.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { Serializer } from '../../serializer/serializer.js';
import { ConnectionAdmission, DEFAULT_CONNECTION_LIMITS } from '../admission.js';
import { neverSent } from '../call-limits.js';
import { LazyAbort } from '../lazy-abort.js';
import { listenOn } from '../listen.js';
import type { CallHandler, ListenOptions, Peer, ProviderCallInfo, ResolvedMethod, TransportServer } from '../transport.js';
import type { GrpcRoute } from './codec.js';
import type { GrpcSettings } from './settings.js';
import { StandardServices } from './standard-services.js';
import { GROUP_HEADER, RESULT_TRAILER, VERSION_HEADER, errorToStatus, fromGrpcMetadata } from './status.js';

const identity = (bytes: Buffer): Buffer => bytes;

/**
 * Serves the handler's services over gRPC. The listening socket is our own `net.Server`, whose
 * connections are handed to grpc-js through a connection injector: that keeps the count of
 * connections (and any future per-connection limit) in our hands while grpc-js does HTTP/2.
 * Every method is registered at its gRPC path up front (see codec.ts for the path and body
 * rules); unknown paths get grpc-js's own UNIMPLEMENTED. The standard health and reflection
 * services are served beside them (standard-services.ts).
 */
export async function listenGrpc(handler: CallHandler, options: ListenOptions, settings: GrpcSettings): Promise<TransportServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxFrameBytes,
    ...(settings.keepaliveTimeMs === undefined ? {} : { 'grpc.keepalive_time_ms': settings.keepaliveTimeMs }),
    ...(settings.keepaliveTimeoutMs === undefined ? {} : { 'grpc.keepalive_timeout_ms': settings.keepaliveTimeoutMs }),
    ...settings.channelOptions,
  });
  const state = new ServingState();
  registerRoutes(server, handler, settings, state);
  const standard = new StandardServices(handler.services(), settings);
  standard.addTo(server);

  const injector = server.createConnectionInjector(settings.serverCredentials());
  const sockets = new Set<net.Socket>();
  const admission = new ConnectionAdmission(options.limits ?? DEFAULT_CONNECTION_LIMITS);
  const listener = net.createServer({ noDelay: true }, (socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    // Over a limit: closed before HTTP/2 starts (the client sees UNAVAILABLE).
    if (admission.admit(address) !== undefined) {
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      admission.release(address);
    });
    injector.injectConnection(socket);
  });
  const address = await listenOn(listener, options);
  let closing: Promise<void> | undefined;

  return {
    host: address.address,
    port: address.port,
    get connections() {
      return sockets.size;
    },
    get running() {
      return state.running;
    },
    close(closeOptions = {}) {
      closing ??= (async () => {
        const until = Date.now() + Math.min(closeOptions.timeoutMs ?? 10_000, MAX_TIMER_MS);
        // Draining: health probes (new connections too) hear NOT_SERVING and new calls are
        // refused UNAVAILABLE, never started, so a consumer retries them elsewhere, while the
        // calls in flight finish. Only then GOAWAY and close.
        state.closing = true;
        standard.draining();
        await state.idle(until);
        const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
        // tryShutdown sends GOAWAY on every session and resolves once their calls are done;
        // what still runs then is a health Watch or a reflection stream, which never ends on
        // its own (or a call past the drain time): cancelled after a short grace.
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          server.tryShutdown(() => resolve());
          timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, Math.max(0, Math.min(until - Date.now(), SHUTDOWN_GRACE_MS)));
        });
        clearTimeout(timer);
        injector.destroy();
        for (const socket of sockets) socket.destroy();
        await stopped;
      })();
      return closing;
    },
  };
}

/** How long GOAWAY waits for the streams that outlive the drain (health watches) before cancelling them. */
const SHUTDOWN_GRACE_MS = 250;

/** What every call of one server shares. */
class ServingState {
  #running = 0;
  #onIdle: (() => void)[] = [];
  /** Set by close(): calls arriving now are refused UNAVAILABLE (never run, safe to retry). */
  closing = false;

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

function registerRoutes(server: grpc.Server, handler: CallHandler, settings: GrpcSettings, state: ServingState): void {
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
        server.register(route.path, (call: grpc.ServerWritableStream<Buffer, Buffer>) => serveStream(call, route, handler, state), identity, identity, 'serverStream');
      } else {
        server.register(route.path, (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => serveUnary(call, callback, route, handler, state), identity, identity, 'unary');
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
function start(call: ServerCall, route: GrpcRoute, stream: boolean, handler: CallHandler, state: ServingState, onDeadline: (error: RpcError) => void): Started | RpcError {
  if (state.closing) return neverSent('provider is going away');
  const meta = fromGrpcMetadata(call.metadata);
  const header = (key: string): string => {
    const value = call.metadata.get(key)[0];
    return typeof value === 'string' ? value : '';
  };
  const resolved = handler.resolve({ service: route.service, version: header(VERSION_HEADER), group: header(GROUP_HEADER), method: route.method, meta });
  if (resolved instanceof RpcError) return resolved;
  if (resolved.stream !== stream) {
    return new RpcError(RpcCode.FAILED_PRECONDITION, `${resolved.service}.${resolved.method} is ${resolved.stream ? 'server-streaming' : 'unary'} in this version; call it as such`);
  }
  let decoded: { value: unknown; serializer: Serializer | undefined };
  try {
    decoded = route.decodeRequest(call.request, handler.serializers);
  } catch (error) {
    return RpcError.from(error, RpcCode.INVALID_ARGUMENT);
  }
  const now = Date.now();
  const callerDeadline = Number(call.getDeadline());
  const deadline = earliest(Number.isFinite(callerDeadline) ? callerDeadline : undefined, resolved.timeoutMs === undefined ? undefined : now + resolved.timeoutMs);
  if (deadline !== undefined && deadline <= now) {
    return new RpcError(RpcCode.DEADLINE_EXCEEDED, `${resolved.service}.${resolved.method} arrived after its deadline; not started`);
  }
  const abort = new LazyAbort(deadline);
  const timer =
    deadline === undefined
      ? undefined
      : setTimeout(() => {
          const error = new RpcError(RpcCode.DEADLINE_EXCEEDED, `${resolved.service}.${resolved.method} did not complete before its deadline`);
          abort.abort(error);
          onDeadline(error);
        }, Math.min(deadline - now, MAX_TIMER_MS));
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

function serveUnary(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>, route: GrpcRoute, handler: CallHandler, state: ServingState): void {
  let answered = false;
  const answer = (error: RpcError | null, bytes?: Buffer): void => {
    if (answered) return;
    answered = true;
    if (error === null) callback(null, bytes);
    else callback(errorToStatus(error) as grpc.ServerErrorResponse);
  };
  const started = start(call, route, false, handler, state, (error) => answer(error));
  if (started instanceof RpcError) return answer(started);
  started.resolved.invoke(started.request, started.info).then(
    (value) => {
      if (started.abort.aborted) return;
      let bytes: Buffer;
      try {
        bytes = route.encodeResponse(value, started.serializer);
      } catch (error) {
        return answer(new RpcError(RpcCode.INTERNAL, `cannot encode the result of ${route.service}.${route.method}: ${(error as Error).message}`));
      }
      answer(null, bytes);
    },
    (error: unknown) => {
      const failure = handler.toCallerError?.(started.resolved, error) ?? RpcError.from(error);
      // After a cancel the caller has stopped listening; the error has nowhere to go.
      if (!started.abort.callerLeft) answer(failure);
    },
  ).finally(started.finish);
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
  let iterator: AsyncIterator<unknown> | undefined;
  let finished = false;
  try {
    const iterable = (await resolved.invoke(started.request, started.info)) as AsyncIterable<unknown>;
    if (iterable === null || typeof iterable !== 'object' || typeof iterable[Symbol.asyncIterator] !== 'function') {
      throw new RpcError(RpcCode.INTERNAL, `${route.service}.${route.method} is declared stream: true but did not return an async iterable (use an async generator method)`);
    }
    iterator = iterable[Symbol.asyncIterator]();
    for (;;) {
      if (abort.aborted) break;
      const step = await iterator.next();
      if (abort.aborted) break;
      if (step.done === true) {
        finished = true;
        const trailers = new grpc.Metadata();
        if (step.value !== undefined) trailers.set(RESULT_TRAILER, route.encodeTrailer(step.value, serializer));
        ended = true;
        call.end(trailers);
        return;
      }
      if (!call.write(route.encodeResponse(step.value, serializer))) {
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

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** grpc-js names peers `host:port`, `[v6]:port` or `ipv4:host:port`. */
function parsePeer(peer: string): Peer {
  const at = peer.lastIndexOf(':');
  if (at < 0) return { address: peer, port: 0 };
  const host = peer.slice(0, at).replace(/^ipv[46]:/, '').replace(/^\[(.*)\]$/, '$1');
  return { address: host, port: Number(peer.slice(at + 1)) || 0 };
}
