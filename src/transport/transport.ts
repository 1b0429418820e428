import type { BackoffOptions } from '../common/backoff.js';
import type { RpcError } from '../errors/errors.js';
import type { Serializer, SerializerSet } from '../serializer/serializer.js';
import type { ClientStream } from './client-stream.js';
import type { ConnectionLimits, RefusalListener } from './admission.js';
import type { Invocation, Metadata, Peer } from '../call/invocation.js';
import type { RequestHead } from './envelope.js';
import type { CloseOptions } from './close-wait.js';
import type { ConnectGate } from './connect-gate.js';
import type { LookupFunction } from 'node:net';

export type { RequestHead } from './envelope.js';
export { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits, type RefusalListener, type RefusalReason, type RefusedConnections } from './admission.js';

/** Connection states, as gRPC names them. */
export type ConnectionState = 'idle' | 'connecting' | 'ready' | 'transient-failure' | 'shutdown';

/**
 * A consumer's connection to one provider, multiplexing any number of calls. It connects
 * lazily, connects again on a call after a jittered backoff following a failure, and never hangs a call: a call
 * fails UNAVAILABLE when the provider cannot be reached within the connect timeout.
 */
export interface ClientConnection {
  /** `host:port` of the provider. */
  readonly address: string;
  readonly state: ConnectionState;
  /** The provider sent GOAWAY: no new calls may go on this connection. */
  readonly goingAway: boolean;
  /** Calls sent and not yet answered. */
  readonly inFlight: number;
  /** Sends one unary call and resolves with the decoded response, or rejects with an RpcError. */
  invoke(invocation: Invocation, serializer: Serializer): Promise<unknown>;
  /**
   * Starts a server-streaming call; resolves with the stream once the request is sent (so a
   * rejection means the request never left). Chunks, the end and errors arrive through the
   * stream; flow control keeps at most `streamWindowBytes` unread.
   */
  openStream(invocation: Invocation, serializer: Serializer): Promise<ClientStream>;
  /**
   * Stops taking calls. With `graceful`, waits for the calls in flight (up to `timeoutMs`),
   * then closes the socket; the calls still running then fail UNAVAILABLE. A later close while
   * one waits ends the wait sooner when it asks for less (not graceful: at once), and resolves
   * with the first.
   */
  close(options?: CloseOptions): Promise<void>;
}

/** What a transport server needs from the provider: resolve a route, then run the method. */
export interface CallHandler {
  /** The serializers the provider accepts. */
  readonly serializers: SerializerSet;
  /**
   * Looks up the method named by `head` without touching the payload. Returns the callable
   * method, or the RpcError to answer (UNIMPLEMENTED for unknown or undecorated names).
   */
  resolve(head: RequestHead): ResolvedMethod | RpcError;
  /**
   * What is served, for transports that must declare their routes before the first call
   * (grpc registers one HTTP/2 path per method).
   */
  services(): readonly ServedService[];
  /**
   * Turns whatever a method threw into the error its caller gets, and reports what the caller
   * will not see (the provider logs it). Without it the transport uses `RpcError.from`.
   */
  toCallerError?(method: ResolvedMethod, error: unknown): RpcError;
}

/** One exported service as a transport sees it. */
export interface ServedService {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly methods: readonly { readonly name: string; readonly stream: boolean }[];
}

/** A method found by {@link CallHandler.resolve}, ready to run. */
export interface ResolvedMethod {
  readonly service: string;
  readonly method: string;
  readonly stream: boolean;
  /** The method's own time limit (`@RpcMethod({ timeoutMs })`), enforced by the provider. */
  readonly timeoutMs: number | undefined;
  /** Runs the method. Rejections are RpcErrors or anything the method threw. */
  invoke(request: unknown, context: ProviderCallInfo): Promise<unknown>;
  /**
   * Runs `fn` in the call's scope, so that calls a handler makes inherit its deadline and
   * cancellation; absent when the provider runs without scopes. `invoke` enters the scope for
   * the handler itself; a transport runs the whole of a stream — every pull of its values — in
   * it, since a generator's body runs on whoever calls its `next()`.
   */
  readonly inScope?: <T>(call: ProviderCallInfo, fn: () => T) => T;
}

/** What the transport knows about a call when it asks the provider to run it. */
export interface ProviderCallInfo {
  readonly signal: AbortSignal;
  readonly deadline: number | undefined;
  readonly meta: Metadata;
  readonly peer: Peer;
}

/** A running transport server. */
export interface TransportServer {
  /** The bound host and port (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  /** Connections currently open. */
  readonly connections: number;
  /** Calls running right now, over all connections. */
  readonly running: number;
  /**
   * What the budgets shared by all connections of this server hold right now (tcp: partial
   * frames, unsent answers, decoded requests), for metrics and tests. Absent where the transport
   * keeps no such budget of its own.
   */
  readonly budgets?: readonly BudgetUse[];
  /**
   * Stops accepting connections, tells every client to go away (GOAWAY), lets calls in flight
   * finish for up to `timeoutMs`, then closes every socket and aborts what is still running.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/** One server-wide byte budget: its limit's option name, the bytes charged now and the limit. */
export interface BudgetUse {
  readonly budget: 'maxTotalBufferedBytes' | 'maxTotalUnsentBytes' | 'maxTotalDecodedBytes';
  readonly used: number;
  readonly limit: number;
}

/** Meta key holding the caller's remaining timeout in ms (relative, as gRPC's grpc-timeout). */
export const TIMEOUT_META = 'shuttle-timeout-ms';

/**
 * Metadata of a consumer's first request on a tcp connection saying it reads LOAD frames; only
 * then does the provider attach its load to answers, so a peer written against the frames it
 * knows never sees one.
 */
export const ACCEPT_LOAD_META = 'shuttle-accept-load';

/** Consumer-side connection settings every transport honours. */
export interface ConnectOptions {
  /** How long a connect may take before calls waiting on it fail UNAVAILABLE. */
  connectTimeoutMs: number;
  /** After this long without receiving anything, send a heartbeat. */
  heartbeatIntervalMs: number;
  /** Declare the connection dead when nothing arrives this long after a heartbeat. */
  heartbeatTimeoutMs: number;
  /** Largest message accepted from the provider, and the largest request sent. */
  maxFrameBytes: number;
  /** Reconnect backoff after a failed connect or a lost connection. */
  backoff: BackoffOptions;
  /** Shared by every connection of one consumer: bounds the connects under way at once. */
  connectGate?: ConnectGate;
  /** Looks up provider host names (cached and bounded, see host-lookup.ts); `dns.lookup` when absent. */
  lookup?: LookupFunction;
  /** Flow-control window of each stream: bytes the provider may send ahead of the reader. */
  streamWindowBytes: number;
  /** Bytes of requests a connection may hold unsent before new calls on it fail, never sent. */
  maxUnsentBytes: number;
  /**
   * Told of each load report a provider attaches to its answers (`address` is `host:port` as
   * dialled; `body` is the provider's untrusted bytes: the receiver checks them).
   */
  onLoad?: (address: string, body: Uint8Array) => void;
  /**
   * Told when the consumer closes a connection because the provider broke the protocol (tcp: a
   * malformed frame, a chunk past the window, a flood of frames that do no work); the calls in
   * flight on it fail with `error`.
   */
  onViolation?: (address: string, error: RpcError) => void;
}

/** Provider-side listening settings every transport honours. */
export interface ListenOptions {
  readonly host: string;
  /** 0 asks the OS for a free port. */
  readonly port: number;
  readonly maxFrameBytes: number;
  /** Connection limits; the defaults when absent. */
  readonly limits?: ConnectionLimits;
  /** Told of each connection refused by a limit (the server counts and logs them). */
  readonly onRefused?: RefusalListener;
  /**
   * The provider's current load report to attach to answers (UTF-8 JSON of a load snapshot, at
   * most {@link MAX_LOAD_REPORT_BYTES}), or undefined for none; `answering` 1 leaves out the one
   * call whose answer carries it, when that call still counts as running. Called often: cheap.
   */
  readonly loadReport?: (answering?: 0 | 1) => Uint8Array | undefined;
}

/** Largest load report a provider attaches to an answer; a consumer ignores a larger one. */
export const MAX_LOAD_REPORT_BYTES = 4096;

/** A connection attaches a load report to an answer at most this often. */
export const LOAD_REPORT_EVERY_MS = 10;

/**
 * How often a tcp provider sends its load, between answers, to each consumer routing to it
 * (its connection carried a request, a chunk or an answer within LOAD_PUSH_RECENT_MS); the
 * model is ORCA's out-of-band reports. A consumer with long streams in flight otherwise learns
 * of other consumers' calls only from the registry's channel, every 500 ms: several gateways in
 * front of one fleet then disagree about which worker is free and send a cached prefix
 * elsewhere (bench:routing, 4 consumers).
 */
export const LOAD_PUSH_EVERY_MS = 50;

/**
 * A connection whose last request, chunk or answer is this old gets no more pushed load reports:
 * its consumer is no longer routing here (or has hung), and a consumer trusts a load report for
 * about this long anyway (the balancers' `staleAfterMs`, 2 s by default). Pushes themselves do
 * not count, so they never keep a silent peer from the idle timeout.
 */
export const LOAD_PUSH_RECENT_MS = 2000;

/**
 * A wire protocol: the provider half listens and hands calls to a {@link CallHandler}; the
 * consumer half opens {@link ClientConnection}s. Built-in: `tcp` (the shuttle frame protocol,
 * the default) and `grpc` (gRPC over HTTP/2 through @grpc/grpc-js, for other languages).
 */
export interface Transport {
  readonly name: string;
  listen(handler: CallHandler, options: ListenOptions): Promise<TransportServer>;
  /** A lazily connecting connection to one provider. */
  connect(host: string, port: number, options: ConnectOptions): ClientConnection;
}

/** Tells a Transport instance from a spec. */
export function isTransport(value: unknown): value is Transport {
  return value !== null && typeof value === 'object' && typeof (value as Transport).listen === 'function' && typeof (value as Transport).connect === 'function';
}
