import grpc from '@grpc/grpc-js';
import { Backoff } from '../../common/backoff.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { Serializer } from '../../serializer/serializer.js';
import { cancelledError, lostInFlight, neverSent, raceCallLimits, sentCallError } from '../call-limits.js';
import { ClientStream } from '../client-stream.js';
import { CloseWait, closeWaitMs, type CloseOptions } from '../close-wait.js';
import type { ClientConnection, ConnectOptions, ConnectionState } from '../transport.js';
import type { Invocation } from '../../call/invocation.js';
import { isTlsFailure, plaintextRefusedHint, tlsHint, tlsReason } from '../tls-diagnosis.js';
import type { GrpcRoute } from './codec.js';
import type { GrpcSettings } from './settings.js';
import { LOAD_TRAILER, RESULT_TRAILER, lostInFlightStatus, statusToError, toGrpcMetadata } from './status.js';
import { listenAbort, unlistenAbort } from '../../common/abort-listeners.js';
import { ResetBudget } from './reset-budget.js';
import { oversizedMessage } from '../tcp/wire-error.js';
import { monotonicNow, toWallTime } from '../../common/clock.js';
import { watchSockets, type ChannelSockets } from './channel-sockets.js';

const identity = (bytes: Buffer): Buffer => bytes;

/** Where the connect-failure probe goes (see #connectFailure), and how long it may take. */
const PROBE_PATH = '/grpc.health.v1.Health/Check';
const PROBE_TIMEOUT_MS = 1000;

const STATES: Record<number, ConnectionState> = {
  [grpc.connectivityState.IDLE]: 'idle',
  [grpc.connectivityState.CONNECTING]: 'connecting',
  [grpc.connectivityState.READY]: 'ready',
  [grpc.connectivityState.TRANSIENT_FAILURE]: 'transient-failure',
  [grpc.connectivityState.SHUTDOWN]: 'shutdown',
};

/** A call in flight, as the connection needs to end it when it closes. */
interface LiveCall {
  fail(error: RpcError): void;
}

/**
 * One grpc-js client (one HTTP/2 connection: the subchannel pool is local) and the calls on it.
 * A connection is replaced by a fresh one before the provider's cancellation limit would end it
 * (reset-budget.ts); the old one takes no new calls and closes when its last call is over.
 */
interface Channel {
  readonly client: grpc.Client;
  readonly resets: ResetBudget;
  calls: number;
  /** Its sockets past TCP connect, destroyed when a connect is given up on; closed with the channel (channel-sockets.ts). */
  readonly connects: ChannelSockets;
  /** Kept, still connecting, after a connect timed out before TCP was up (see #park). */
  parked: boolean;
}

/** Closes `channel`, and keeps grpc-js from connecting it again (see channel-sockets.ts). */
function closeChannel(channel: Channel): void {
  channel.connects.closed = true;
  channel.client.close();
}

/** A request ready to send: its route, its bytes and its headers. */
interface Prepared {
  readonly route: GrpcRoute;
  readonly bytes: Buffer;
  readonly metadata: grpc.Metadata;
  readonly options: grpc.CallOptions;
}

/**
 * A consumer's gRPC channel to one provider (or any gRPC server), through @grpc/grpc-js;
 * keepalive pings play the part of heartbeats. It connects as a tcp connection does: only when
 * a call needs it, in a slot of the consumer's connect gate (`maxConnecting`), within the
 * connect timeout. A connect that fails or times out closes its channel (and its socket) and
 * holds calls off for a backoff (the consumer's `reconnect` settings): calls fail UNAVAILABLE,
 * never sent, at once, so the cluster layer can move on, and the next call after the backoff
 * makes a new channel. Nothing reconnects in the background: grpc-js would reconnect a failed
 * channel by itself for as long as it is open (200 refusing addresses drew about 1,000 connects a
 * second with no call made).
 */
export class GrpcConnection implements ClientConnection {
  readonly address: string;
  /** The channel new calls go to; none before the first connect and after a failed one. */
  #current: Channel | undefined;
  /** Channels replaced while calls were still on them; each closes with its last call. */
  readonly #retired = new Set<Channel>();
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #settings: GrpcSettings;
  readonly #options: ConnectOptions;
  readonly #calls = new Set<LiveCall>();
  #closed = false;
  /** A graceful close's wait for the calls in flight. */
  readonly #idle = new CloseWait();
  /** The close under way, once close() was called. */
  #closing: Promise<void> | undefined;
  /** The connect under way (waiting for a gate slot included), if any. */
  #connecting: Promise<void> | undefined;
  readonly #backoff: Backoff;
  /** Until then (monotonic) calls fail at once with {@link #lastError}: the last connect failed. */
  #retryAt = 0;
  #lastError: RpcError | undefined;

  /** `host:port` as the client keys its providers (no brackets around an IPv6 host). */
  readonly #provider: string;

  constructor(host: string, port: number, options: ConnectOptions, settings: GrpcSettings) {
    this.address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#provider = `${host}:${port}`;
    this.#settings = settings;
    this.#options = options;
    this.#channelOptions = {
      'grpc.max_receive_message_length': options.maxFrameBytes,
      'grpc.keepalive_time_ms': settings.keepaliveTimeMs ?? options.heartbeatIntervalMs,
      'grpc.keepalive_timeout_ms': settings.keepaliveTimeoutMs ?? options.heartbeatTimeoutMs,
      // grpc-js's own reconnects never run (a failed channel is closed), but a subchannel that
      // fails is held back this long before it may connect again.
      'grpc.initial_reconnect_backoff_ms': options.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': options.backoff.maxMs,
      // Retries, hedging and provider choice belong to the cluster layer, which sees every
      // provider; grpc-js's own would retry behind its back on one channel.
      'grpc.enable_retries': 0,
      // channelz (grpc-js's per-call counters and event traces for the channelz service, which
      // shuttle does not serve) costs objects and clock reads on every call.
      'grpc.enable_channelz': 0,
      // One channel per provider, closed with it: a shared subchannel pool would keep sockets
      // of closed connections alive for other channels.
      'grpc.use_local_subchannel_pool': 1,
      ...(settings.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': settings.serverName, 'grpc.default_authority': settings.serverName }),
      ...settings.channelOptions,
    };
    this.#backoff = new Backoff(options.backoff);
  }

  #open(): Channel {
    const connects: ChannelSockets = { sockets: new Set(), closed: false, paused: false };
    const credentials = watchSockets(this.#settings.channelCredentials(), connects);
    return { client: new grpc.Client(this.address, credentials, this.#channelOptions), resets: new ResetBudget(), calls: 0, connects, parked: false };
  }

  /**
   * Closes `channel` at once when it has no call, else once its last call ends. A channel that
   * is not ready loses its sockets too: grpc-js would keep one whose connect is under way.
   */
  #discard(channel: Channel): void {
    if (this.#current === channel) this.#current = undefined;
    if (channel.client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY) {
      for (const socket of channel.connects.sockets) socket.destroy();
    }
    if (channel.calls === 0) closeChannel(channel);
    else this.#retired.add(channel);
  }

  /**
   * Counts a call on `channel` that this side gave up on (the provider sees an RST_STREAM);
   * when the channel's budget runs low, new calls go to a fresh channel from now on.
   */
  #resetSent(channel: Channel): void {
    if (!channel.resets.spend() || channel !== this.#current || this.#closed) return;
    this.#current = this.#open();
    if (channel.calls === 0) closeChannel(channel);
    else this.#retired.add(channel);
  }

  /**
   * `connecting` while a connect waits for its slot or runs; after a failed one,
   * `transient-failure` until the backoff ends, then `idle`: the next call connects.
   */
  get state(): ConnectionState {
    if (this.#closed) return 'shutdown';
    if (this.#connecting !== undefined) return 'connecting';
    const current = this.#current;
    if (current === undefined) return monotonicNow() < this.#retryAt ? 'transient-failure' : 'idle';
    return STATES[current.client.getChannel().getConnectivityState(false)] ?? 'idle';
  }

  /** grpc-js handles a server's GOAWAY itself, by moving new calls to a new connection. */
  get goingAway(): boolean {
    return false;
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  invoke(invocation: Invocation, serializer: Serializer): Promise<unknown> {
    return this.#send(invocation, serializer, (prepared) => this.#unary(prepared, invocation, serializer));
  }

  openStream(invocation: Invocation, serializer: Serializer): Promise<ClientStream> {
    return this.#send(invocation, serializer, (prepared) => this.#stream(prepared, invocation, serializer));
  }

  /**
   * Prepares the request (failing INVALID_ARGUMENT etc. before anything leaves), waits for the
   * channel when it is not ready, then runs `start`; every failure is a rejection.
   */
  #send<T>(invocation: Invocation, serializer: Serializer, start: (prepared: Prepared) => T | Promise<T>): Promise<T> {
    let prepared: Prepared;
    try {
      prepared = this.#prepare(invocation, serializer);
    } catch (error) {
      return Promise.reject(RpcError.from(error, RpcCode.INVALID_ARGUMENT));
    }
    return this.#start(prepared, invocation, start);
  }

  /** Runs `start` once the channel is ready (checked again after a wait: it may have been replaced meanwhile). */
  #start<T>(prepared: Prepared, invocation: Invocation, start: (prepared: Prepared) => T | Promise<T>): Promise<T> {
    const ready = this.#whenReady(invocation);
    if (ready !== undefined) return ready.then(() => this.#start(prepared, invocation, start));
    try {
      return Promise.resolve(start(prepared));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing !== undefined) {
      // Closing already, maybe waiting for calls: a close that asks for less ends the wait sooner.
      this.#idle.shorten(closeWaitMs(options));
      return this.#closing;
    }
    this.#closing = this.#close(options);
    return this.#closing;
  }

  async #close(options: CloseOptions): Promise<void> {
    this.#closed = true;
    if (options.graceful === true && this.#calls.size > 0) await this.#idle.wait(closeWaitMs(options));
    for (const call of [...this.#calls]) call.fail(new RpcError(RpcCode.UNAVAILABLE, `connection to ${this.address} closed with the call in flight`));
    for (const channel of this.#retired) closeChannel(channel);
    this.#retired.clear();
    if (this.#current !== undefined) this.#discard(this.#current);
  }

  /** Everything that can fail before the request leaves, so it fails as INVALID_ARGUMENT etc. */
  #prepare(invocation: Invocation, serializer: Serializer): Prepared {
    const { service, method } = invocation;
    const route = this.#settings.routes.route(service, method);
    if (route === undefined) {
      throw new RpcError(RpcCode.UNIMPLEMENTED, `${service}.${method}: the grpc transport's .proto files declare ${service} without an rpc ${method}`, {
        details: { neverSent: true },
      });
    }
    if (route.protoStream !== undefined && route.protoStream !== invocation.stream) {
      throw new RpcError(
        RpcCode.FAILED_PRECONDITION,
        route.protoStream
          ? `${service}.${method} is a server-streaming rpc: iterate the call (for await (const chunk of proxy.${method}(…)))`
          : `${service}.${method} is a unary rpc: await the call instead of iterating it`,
      );
    }
    const bytes = route.encodeRequest(invocation.request, serializer);
    // The provider refuses a message over its maxFrameBytes only once it has all arrived, and
    // says only "Received message larger than max": refused here, naming the call and the limit.
    if (bytes.length > this.#options.maxFrameBytes) {
      throw oversizedMessage(`the request of ${service}.${method}`, bytes.length, this.#options.maxFrameBytes, { neverSent: true });
    }
    const metadata = toGrpcMetadata(invocation.metadata, invocation.version, invocation.group, invocation.stream ? 'stream' : 'unary');
    return { route, bytes, metadata, options: invocation.deadline === undefined ? {} : { deadline: toWallTime(invocation.deadline) } };
  }

  /** Undefined when the channel is ready (the hot path); otherwise a wait for it. */
  #whenReady(invocation: Invocation): Promise<void> | undefined {
    if (this.#closed) return Promise.reject(neverSent(`connection to ${this.address} is closed`));
    // Not tryToConnect: a connect starts only in a slot of the gate (#dial). A channel that is
    // not ready (idle after losing its connection, or failed) is connected or closed there too.
    const current = this.#current;
    if (current !== undefined && this.#connecting === undefined && current.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY) {
      return undefined;
    }
    if (this.#connecting === undefined && monotonicNow() < this.#retryAt) {
      // Fail fast rather than queue: the cluster layer can pick another provider right away.
      const why = this.#lastError?.rawMessage ?? `cannot connect to ${this.address}`;
      return Promise.reject(neverSent(`${why}; next attempt in ${Math.ceil(this.#retryAt - monotonicNow())} ms`));
    }
    const connecting = this.#connecting ?? this.#connect();
    if (invocation.signal === undefined && invocation.deadline === undefined) return connecting;
    return raceCallLimits(connecting, invocation, this.address);
  }

  /** Starts a connect, in a slot of the consumer's connect gate when it has one. */
  #connect(): Promise<void> {
    const gate = this.#options.connectGate;
    const dial = gate === undefined ? this.#dial() : gate.run(() => this.#dial());
    const connecting = dial.then(
      () => {
        this.#connecting = undefined;
      },
      (error: unknown) => {
        this.#connecting = undefined;
        throw error;
      },
    );
    this.#connecting = connecting;
    // Nobody may await it (calls that gave up); its failure is kept in #lastError.
    connecting.catch(() => {});
    return connecting;
  }

  /**
   * Connects a channel (a new one after a failure); resolves once it is ready. A connect that
   * fails, or is not ready within `connectTimeoutMs` (grpc-js itself gives it no limit, and
   * waits for the server's HTTP/2 SETTINGS), ends in {@link #failed}.
   */
  #dial(): Promise<void> {
    // Closed while waiting for a connect slot.
    if (this.#closed) return Promise.reject(neverSent(`connection to ${this.address} is closed`));
    this.#current ??= this.#open();
    const channel = this.#current;
    channel.connects.paused = false;
    const grpcChannel = channel.client.getChannel();
    const timeoutMs = this.#options.connectTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      // grpc-js compares this with Date.now() itself.
      const giveUp = Date.now() + timeoutMs;
      const watch = (state: grpc.connectivityState): void => {
        if (state === grpc.connectivityState.READY) {
          this.#backoff.reset();
          this.#retryAt = 0;
          return resolve();
        }
        if (this.#closed || state === grpc.connectivityState.SHUTDOWN) return reject(neverSent(`connection to ${this.address} is closed`));
        if (state === grpc.connectivityState.TRANSIENT_FAILURE) return void this.#failed(channel).then(reject);
        grpcChannel.watchConnectivityState(state, giveUp, (error) => {
          if (error === undefined) return watch(grpcChannel.getConnectivityState(true));
          if (channel.connects.sockets.size === 0) return reject(this.#park(channel, neverSent(`cannot connect to ${this.address} within ${timeoutMs} ms`)));
          const why = `provider ${this.address} accepted the connection but did not start HTTP/2 within ${timeoutMs} ms (connectTimeoutMs): its process is stopped, hung or too busy to answer, or it does not speak gRPC`;
          void this.#failed(channel, neverSent(why)).then(reject);
        });
      };
      watch(grpcChannel.getConnectivityState(true));
    });
  }

  /**
   * Ends a connect that timed out before TCP was up (no answer to its SYN, or a host name not
   * yet looked up), holding calls off for the next backoff but keeping the channel: grpc-js
   * offers no way to abort its TCP connect, and a channel closed now would leave that socket
   * waiting for the kernel to give up (about 2 min), while a new one dialled the address again
   * after each backoff. Kept, the channel holds that one socket, counts as connecting (so
   * towards `maxConnections`), and is dialled again by no one: the next connect after the
   * backoff waits on it. Once it fails, or TCP comes up before a connect waits on it again, it
   * is closed (grpc-js would retry it by itself).
   */
  #park(channel: Channel, error: RpcError): RpcError {
    this.#lastError = error;
    this.#retryAt = monotonicNow() + this.#backoff.next();
    // Should TCP come up meanwhile, the socket is dropped (the connect has no gate slot now) and
    // the channel, failed, is closed below.
    channel.connects.paused = true;
    if (channel.parked) return error;
    channel.parked = true;
    const grpcChannel = channel.client.getChannel();
    const changed = (): void => {
      const state = grpcChannel.getConnectivityState(false);
      if (state === grpc.connectivityState.CONNECTING) return grpcChannel.watchConnectivityState(state, Number.POSITIVE_INFINITY, changed);
      channel.parked = false;
      // A connect under way on it (after the backoff) handles the failure itself.
      if (state === grpc.connectivityState.TRANSIENT_FAILURE && this.#connecting === undefined && !this.#closed) this.#discard(channel);
    };
    // No deadline: grpc-js keeps the watch in a list, with no timer.
    grpcChannel.watchConnectivityState(grpc.connectivityState.CONNECTING, Number.POSITIVE_INFINITY, changed);
    return error;
  }

  /**
   * Ends a connect that failed: finds out why (unless `error` says), closes the channel and its
   * sockets (left open, grpc-js would reconnect it in the background for as long as it is
   * open), and holds calls off for the next backoff.
   */
  async #failed(channel: Channel, error?: RpcError): Promise<RpcError> {
    // The probe is issued at once, while the channel is failed; then no more connects on it,
    // not even while the probe runs (grpc-js retries a failed subchannel when its backoff ends).
    const found = error ?? this.#connectFailure(channel);
    channel.connects.closed = true;
    const why = await found;
    this.#discard(channel);
    if (!this.#closed) {
      this.#lastError = why;
      this.#retryAt = monotonicNow() + this.#backoff.next();
    }
    return why;
  }

  /**
   * Why the channel cannot connect, as an UNAVAILABLE (never sent) error with the reason and,
   * for the usual TLS mistakes, what to change. grpc-js keeps the reason to itself until a
   * call fails on the channel ("No connection established. Last error: …"), so a probe call
   * asks for it: it fails at once while the channel is in transient failure, and if the
   * channel has come up meanwhile it is a harmless health check.
   */
  async #connectFailure(channel: Channel): Promise<RpcError> {
    const details = await new Promise<string>((resolve) => {
      try {
        channel.client.makeUnaryRequest(
          PROBE_PATH,
          identity,
          identity,
          Buffer.alloc(0),
          new grpc.Metadata(),
          { deadline: Date.now() + PROBE_TIMEOUT_MS },
          (error) => resolve(error?.details ?? ''),
        );
      } catch {
        // The channel was closed meanwhile: no reason to be had.
        resolve('');
      }
    });
    const last = /Last error: ([\s\S]*?)\.? Resolution note/
      .exec(details)?.[1]
      ?.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)\s*$/, '')
      .trim();
    if (last === undefined || last === '') return neverSent(`cannot connect to ${this.address}`);
    if (this.#settings.secure && isTlsFailure(last)) {
      const reason = tlsReason(last);
      return neverSent(`TLS with ${this.address} failed: ${reason}${tlsHint(reason)}`);
    }
    // grpc-js's words for a connection closed after TCP connected and before HTTP/2 started.
    if (!this.#settings.secure && last.startsWith('Failed to connect')) {
      return neverSent(`cannot connect to ${this.address}: closed by the provider before HTTP/2 started${plaintextRefusedHint('grpc')}`);
    }
    return neverSent(`cannot connect to ${this.address}: ${tlsReason(last)}`);
  }

  /**
   * A unary call on the channel's own call object, below grpc-js's client layer: that layer
   * makes an interceptor chain, an EventEmitter and an Error (for the caller's stack) per call,
   * about 15 % of the consumer's CPU per call in bench:unary. Bodies are
   * already bytes, and status, trailers and cancellation are what the channel's call gives.
   */
  #unary(prepared: Prepared, invocation: Invocation, serializer: Serializer): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { route } = prepared;
      const signal = invocation.signal;
      if (signal?.aborted) return reject(cancelledError(invocation, signal));
      let settled = false;
      let answer: Buffer | undefined;
      // Ready: #whenReady saw it so just now.
      const channel = this.#current as Channel;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        this.#untrack(live, channel);
        if (onAbort !== undefined) unlistenAbort(signal, onAbort);
        return true;
      };
      const call = channel.client
        .getChannel()
        .createCall(route.path, invocation.deadline === undefined ? Number.POSITIVE_INFINITY : toWallTime(invocation.deadline), undefined, null, undefined);
      const live: LiveCall = {
        fail: (error) => {
          if (!settle()) return;
          call.cancelWithStatus(grpc.status.CANCELLED, 'Cancelled on client');
          this.#resetSent(channel);
          reject(error);
        },
      };
      call.start(prepared.metadata, {
        onReceiveMetadata: () => {},
        onReceiveMessage: (message: Buffer) => {
          if (answer !== undefined) return call.cancelWithStatus(grpc.status.UNIMPLEMENTED, 'Too many responses received');
          answer = message;
        },
        onReceiveStatus: (status: grpc.StatusObject) => {
          this.#loadFrom(status.metadata);
          if (!settle()) return;
          // A deadline that passed here resets the stream too.
          if (status.code === grpc.status.DEADLINE_EXCEEDED) this.#resetSent(channel);
          if (status.code !== grpc.status.OK) return reject(callFailure(status));
          if (answer === undefined)
            return reject(statusToError({ code: grpc.status.UNIMPLEMENTED, details: 'No message received', metadata: status.metadata }));
          try {
            resolve(route.decodeResponse(answer, serializer));
          } catch (decodeFailure) {
            reject(RpcError.from(decodeFailure, RpcCode.INTERNAL));
          }
        },
      });
      call.startRead();
      call.sendMessageWithContext({}, prepared.bytes);
      call.halfClose();
      const onAbort = signal === undefined ? undefined : (): void => live.fail(cancelledError(invocation, signal));
      if (onAbort !== undefined) listenAbort(signal, onAbort);
      this.#calls.add(live);
      channel.calls++;
      // Fire and forget: done once the request is handed to the channel (gRPC has no one-way
      // call; the answer, when it comes, is dropped).
      if (invocation.oneWay && settle()) resolve(undefined);
    });
  }

  /**
   * Opens a server stream. Flow control: chunks the reader has not taken count against the
   * stream window; past it the grpc-js stream is paused, which stops reading from HTTP/2 and
   * so, through HTTP/2's own flow control, the provider.
   */
  #stream(prepared: Prepared, invocation: Invocation, serializer: Serializer): ClientStream {
    const { route } = prepared;
    const window = this.#options.streamWindowBytes;
    const signal = invocation.signal;
    if (signal?.aborted) throw cancelledError(invocation, signal);
    // Ready: #whenReady saw it so just now.
    const channel = this.#current as Channel;
    const call = channel.client.makeServerStreamRequest(route.path, identity, identity, prepared.bytes, prepared.metadata, prepared.options);
    let unread = 0;
    let paused = false;
    let status: grpc.StatusObject | undefined;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.#untrack(live, channel);
      if (onAbort !== undefined) unlistenAbort(signal, onAbort);
    };
    const stream = new ClientStream(
      (bytes) => {
        unread -= bytes;
        if (paused && unread < window) {
          paused = false;
          call.resume();
        }
      },
      () => {
        const open = !done;
        finish();
        call.cancel();
        if (open) this.#resetSent(channel);
      },
    );
    const live: LiveCall = {
      fail: (error) => {
        const open = !done;
        finish();
        stream.fail(error);
        call.cancel();
        if (open) this.#resetSent(channel);
      },
    };
    const onAbort = signal === undefined ? undefined : (): void => live.fail(cancelledError(invocation, signal));
    if (onAbort !== undefined) listenAbort(signal, onAbort);
    this.#calls.add(live);
    channel.calls++;

    call.on('data', (chunk: Buffer) => {
      let value: unknown;
      try {
        value = route.decodeResponse(chunk, serializer);
      } catch (error) {
        return live.fail(RpcError.from(error, RpcCode.INTERNAL));
      }
      unread += chunk.length;
      stream.push(value, chunk.length);
      if (!paused && unread >= window) {
        paused = true;
        call.pause();
      }
    });
    call.on('status', (received: grpc.StatusObject) => {
      status = received;
      this.#loadFrom(received.metadata);
    });
    call.on('error', (error: grpc.ServiceError) => {
      // Chunks that arrived before the error are still delivered (read() emits 'data').
      while (call.read() !== null);
      const open = !done;
      finish();
      if (open && error.code === grpc.status.DEADLINE_EXCEEDED) this.#resetSent(channel);
      stream.fail(callFailure(error));
    });
    call.on('end', () => {
      finish();
      if (status !== undefined && status.code !== grpc.status.OK) return;
      const trailer = status?.metadata.get(RESULT_TRAILER)[0];
      try {
        stream.end(Buffer.isBuffer(trailer) ? route.decodeTrailer(trailer, serializer) : undefined);
      } catch (error) {
        stream.fail(RpcError.from(error, RpcCode.INTERNAL));
      }
    });
    return stream;
  }

  /** Hands the provider's load report in `trailers`, if any, to the client (which checks it). */
  #loadFrom(trailers: grpc.Metadata): void {
    const report = trailers.get(LOAD_TRAILER)[0];
    if (typeof report === 'string') this.#options.onLoad?.(this.#provider, Buffer.from(report));
  }

  #untrack(call: LiveCall, channel: Channel): void {
    this.#calls.delete(call);
    channel.calls--;
    if (channel.calls === 0 && this.#retired.delete(channel)) closeChannel(channel);
    if (this.#calls.size === 0) this.#idle.done();
  }
}

/**
 * The error of a call that ended with a failed status: the provider's own, or, when grpc-js
 * reports the connection or stream lost with the request out, the same marked maybe executed,
 * as the tcp transport marks the calls on a connection it loses. A keepalive that went
 * unanswered (a hung provider) had failed a non-idempotent call `failed`, telling its caller the
 * handler had not run and a resend was safe.
 */
function callFailure(status: Pick<grpc.StatusObject, 'code' | 'details'> & { metadata?: grpc.Metadata | null }): RpcError {
  const error = statusToError(status);
  return lostInFlightStatus(status) ? lostInFlight(error) : sentCallError(error);
}
