import net from 'node:net';
import tls from 'node:tls';
import { Backoff } from '../../common/backoff.js';
import { DeadlineHeap, liveDeadlines } from '../../common/deadline-heap.js';
import { RecentMap } from '../../common/recent-map.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { PayloadTarget, Serializer } from '../../serializer/serializer.js';
import type { ClientStream } from '../client-stream.js';
import { FrameDecoder } from '../decoder.js';
import { encodeRoute, measureMeta, writeMeta } from '../envelope.js';
import type { Metadata, Invocation } from '../../call/invocation.js';
import { FrameFlag, FrameType, HEADER_BYTES, encodeFrame, writeHeader, type Frame } from '../frame.js';
import { WINDOW_META, encodeWindowUpdate, grantStep } from '../stream-frames.js';
import { cancelledError, deadlineError, lostInFlight, neverSent, raceCallLimits, sentCallError } from '../call-limits.js';
import type { ResolvedTls } from '../tls-options.js';
import { isTlsFailure, tlsHint, tlsReason } from '../tls-diagnosis.js';
import { ACCEPT_LOAD_META, TIMEOUT_META, type ClientConnection, type ConnectOptions, type ConnectionState } from '../transport.js';
import { CloseWait, closeWaitMs, type CloseOptions } from '../close-wait.js';
import { FrameWriter } from './frame-writer.js';
import { StreamCall, UnaryCall, type PendingCall } from './pending.js';
import { decodeWireError, encodeErrorFrame, oversizedMessage } from './wire-error.js';
import { NoopFrameBudget, noopFlood } from './noop-frames.js';
import { listenAbort, unlistenAbort } from '../../common/abort-listeners.js';
import { monotonicNow } from '../../common/clock.js';

/** Requests of a new connection that ask for LOAD frames, at most (see ACCEPT_LOAD_META). */
const ASK_LOAD_REQUESTS = 16;

/**
 * Encoded routes a connection keeps per generation (see RecentMap). A route is encoded before
 * the provider says whether it serves the method, and a consumer calls whatever method names
 * it is given: kept for every name ever called, 100,000 names held 100,000 routes per connection.
 */
const MAX_CACHED_ROUTES = 256;

/**
 * The shortest time between two HEARTBEAT_ACKs on one connection. An answer says only that this
 * side is alive, which one every 100 ms says as well as a thousand; a provider that sends
 * heartbeats without reading its socket would otherwise make this side queue 20 bytes (and a
 * write request) per heartbeat, without bound: 1.4 GB in 12 s, measured.
 */
const MIN_ACK_INTERVAL_MS = 100;

/**
 * The shortest time between two LOAD frames this side reads on one connection; one arriving
 * sooner is dropped unread. A provider sends one at most every 10 ms after its answers and every
 * 50 ms between them; one that floods them at full speed made this side parse and check each
 * (a JSON text, then every field), which cut a neighbouring provider's answered calls from 1,950
 * to 63 in 8 s on 2 cores, against 330 for a flood of frames that cost only their decoding.
 */
const MIN_LOAD_INTERVAL_MS = 5;

/** Settings of a consumer's tcp connection (the transport-wide {@link ConnectOptions}). */
export type TcpClientOptions = ConnectOptions;

/** A route's encoded bytes and its response decoding target, cached per connection. */
interface CachedRoute {
  readonly bytes: Buffer;
  readonly target: PayloadTarget;
}

/**
 * The tcp transport's {@link ClientConnection}: one socket to one provider, any number of
 * unary and streaming calls in flight, matched to their frames by request id.
 */
export class TcpConnection implements ClientConnection {
  readonly address: string;
  /** Answers dropped for carrying an id no call is waiting for (late, duplicate, or made up). */
  droppedFrames = 0;
  /** LOAD frames dropped unread for arriving less than 5 ms after the one before (a flood). */
  droppedLoads = 0;
  /**
   * Connections this side closed because the provider broke the protocol: a malformed frame, a
   * chunk past the window, more frames that do no work than MAX_NOOP_FRAMES a second.
   */
  protocolErrors = 0;
  readonly #host: string;
  readonly #port: number;
  readonly #options: TcpClientOptions;
  /**
   * Requests left that tell the provider this consumer reads LOAD frames: the first few of a
   * connection, until a LOAD arrives (one refused before admission turns nothing on).
   */
  #askLoad = 0;
  readonly #backoff: Backoff;
  readonly #pending = new Map<number, PendingCall>();
  readonly #routes = new RecentMap<string, CachedRoute>(MAX_CACHED_ROUTES);
  readonly #routesByIdentity = new WeakMap<object, CachedRoute>();
  readonly #deadlines = new DeadlineHeap({
    deadlineOf: (id) => this.#pending.get(id)?.deadline,
    live: () => liveDeadlines(this.#pending),
    liveCount: () => this.#pending.size,
    expire: (id) => {
      const call = this.#pending.get(id);
      if (call !== undefined) this.#abandon(id, sentCallError(deadlineError(call.target)));
    },
  });
  #state: ConnectionState = 'idle';
  #socket: net.Socket | undefined;
  #writer: FrameWriter | undefined;
  #connecting: Promise<void> | undefined;
  #lastError: RpcError | undefined;
  #retryAt = 0;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #lastReadAt = 0;
  #heartbeatSentAt = 0;
  /** The socket's decoder, and when its current partial frame began (the frame count then). */
  #decoder: FrameDecoder | undefined;
  #partialSince: number | undefined;
  #partialFrames = 0;
  /** When this side last answered a HEARTBEAT (see MIN_ACK_INTERVAL_MS). */
  #ackedAt = 0;
  /** When this side last read a LOAD frame (see MIN_LOAD_INTERVAL_MS). */
  #loadAt = 0;
  /** Frames of the current socket that caused no work (see MAX_NOOP_FRAMES). */
  #noop = new NoopFrameBudget();
  #goingAway = false;
  #nextId = 1;
  /** A graceful close's wait for the calls in flight. */
  readonly #drained = new CloseWait();
  /** The close under way, once close() was called. */
  #closing: Promise<void> | undefined;

  readonly #tls: ResolvedTls | undefined;
  /** Whether the provider has sent anything on the current socket. */
  #answered = false;
  /**
   * Ends the connect under way: without an error once the provider's first frame arrives, with
   * one when the socket is lost first. Set from the dial until then.
   */
  #settleConnect: ((error?: RpcError) => void) | undefined;

  /** @param secure TLS settings: the connection then speaks TLS (mutual with cert and key) */
  constructor(host: string, port: number, options: TcpClientOptions, secure?: ResolvedTls) {
    this.#host = host;
    this.#port = port;
    this.address = `${host}:${port}`;
    this.#options = options;
    this.#tls = secure;
    this.#backoff = new Backoff(options.backoff);
  }

  /**
   * `transient-failure` until the backoff after a failure ends, then `idle`: the next call
   * connects. Nothing reconnects in the background (see #onLost).
   */
  get state(): ConnectionState {
    if (this.#state === 'transient-failure' && monotonicNow() >= this.#retryAt) this.#state = 'idle';
    return this.#state;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  get goingAway(): boolean {
    return this.#goingAway;
  }

  invoke(invocation: Invocation, serializer: Serializer): Promise<unknown> {
    if (this.#sendable()) return this.#sendUnary(invocation, serializer);
    // Checked again once woken: the calls one drain wakes must not all write past the budget.
    return this.#whenSendable(invocation).then(() => this.invoke(invocation, serializer));
  }

  openStream(invocation: Invocation, serializer: Serializer): Promise<ClientStream> {
    if (this.#sendable()) return this.#sendStream(invocation, serializer);
    return this.#whenSendable(invocation).then(() => this.openStream(invocation, serializer));
  }

  /** Ready, and the requests queued for the socket within budget. */
  #sendable(): boolean {
    return this.#state === 'ready' && !this.#goingAway && this.#writer?.overBudget !== true;
  }

  /**
   * Waits, within the call's deadline, until the connection is ready and the requests queued
   * for its socket are back under `maxUnsentBytes`: a provider that reads slower than this
   * consumer writes slows the consumer down (backpressure) instead of failing its calls. One
   * that takes none of the queued bytes for `heartbeatTimeoutMs` is not reading at all: the call
   * then fails never sent, so that it can go to another provider.
   */
  async #whenSendable(invocation: Invocation): Promise<void> {
    if (this.#state !== 'ready' || this.#goingAway) await this.#whenReady(invocation);
    for (;;) {
      const writer = this.#writer;
      if (writer === undefined || !writer.overBudget) return;
      const before = writer.unsentBytes;
      const stallMs = this.#options.heartbeatTimeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<void>((resolve) => (timer = setTimeout(resolve, stallMs)));
      try {
        await raceCallLimits(
          Promise.race([writer.drained(), stalled]),
          invocation,
          this.address,
          `waiting for provider ${this.address} to read the requests queued before it`,
        );
      } finally {
        clearTimeout(timer);
      }
      if (this.#writer === writer && writer.overBudget && writer.unsentBytes >= before) {
        throw neverSent(
          `${writer.unsentBytes} bytes of requests wait unsent to provider ${this.address}, over this connection's limit (maxUnsentBytes ${this.#options.maxUnsentBytes}), and it took none of them in ${stallMs} ms; the provider is not reading`,
        );
      }
    }
  }

  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing !== undefined) {
      // Closing already, maybe waiting for calls: a close that asks for less ends the wait sooner.
      this.#drained.shorten(closeWaitMs(options));
      return this.#closing;
    }
    this.#closing = this.#close(options);
    return this.#closing;
  }

  async #close(options: CloseOptions): Promise<void> {
    this.#state = 'shutdown';
    if (options.graceful === true && this.#pending.size > 0) await this.#drained.wait(closeWaitMs(options));
    const socket = this.#socket;
    this.#teardown(new RpcError(RpcCode.UNAVAILABLE, `connection to ${this.address} closed by the client`));
    if (socket !== undefined && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.end(encodeFrame(FrameType.GOAWAY, 0));
        socket.destroySoon();
        setTimeout(() => socket.destroy(), 1000).unref();
      });
    }
  }

  /** Waits until the connection is ready, or rejects UNAVAILABLE/DEADLINE/CANCELLED. */
  #whenReady(invocation: Invocation): Promise<void> {
    if (this.#state === 'shutdown') {
      return Promise.reject(neverSent(`connection to ${this.address} is closed`));
    }
    if (this.#goingAway) {
      // A GOAWAY that said why (a provider at its connection limit) is quoted.
      const why = this.#lastError?.rawMessage;
      return Promise.reject(
        neverSent(why === undefined ? `provider ${this.address} is going away (GOAWAY received)` : `provider ${this.address} is going away: ${why}`),
      );
    }
    if (this.#state === 'transient-failure' && monotonicNow() < this.#retryAt) {
      // Fail fast rather than queue: the cluster layer can pick another provider right away.
      const error = this.#lastError;
      return Promise.reject(
        neverSent(`provider ${this.address} unavailable (${error?.rawMessage ?? 'connect failed'}); next attempt in ${this.#retryAt - monotonicNow()} ms`),
      );
    }
    const connecting = this.#connecting ?? this.#connect();
    if (invocation.signal === undefined && invocation.deadline === undefined) return connecting;
    return raceCallLimits(connecting, invocation, this.address);
  }

  #connect(): Promise<void> {
    this.#state = 'connecting';
    const gate = this.#options.connectGate;
    const connecting = gate === undefined ? this.#dial() : gate.run(() => this.#dial());
    this.#connecting = connecting;
    // Nobody may await this promise (calls that gave up); its failure is recorded in #lastError.
    connecting.catch(() => {});
    return connecting;
  }

  /**
   * Opens the socket; resolves once the provider has answered on it. A connect that succeeds
   * proves only that the provider's kernel accepted it: a stopped process or one whose event
   * loop is blocked still accepts, and calls written to it would wait for the heartbeat (15 s
   * by default) and then fail "maybe executed". So the connection sends a HEARTBEAT as soon as
   * it is connected and counts as ready only when a frame comes back, all within
   * `connectTimeoutMs`; until then no call is written, and one that gives up was never sent.
   * Every provider answers a HEARTBEAT, so this asks nothing new of the peer; it costs one round
   * trip per connection.
   */
  #dial(): Promise<void> {
    // Closed while waiting for a connect slot.
    if (this.#state !== 'connecting') return Promise.reject(neverSent(`connection to ${this.address} is closed`));
    const secure = this.#tls;
    const lookup = this.#options.lookup === undefined ? {} : { lookup: this.#options.lookup };
    const socket =
      secure === undefined
        ? net.connect({ host: this.#host, port: this.#port, noDelay: true, ...lookup })
        : tls.connect({
            host: this.#host,
            port: this.#port,
            ...lookup,
            ...(secure.ca === undefined ? {} : { ca: secure.ca }),
            ...(secure.cert === undefined ? {} : { cert: secure.cert, key: secure.key }),
            // SNI takes host names only; an IP address is still checked against the certificate.
            ...(secure.serverName !== undefined ? { servername: secure.serverName } : net.isIP(this.#host) === 0 ? { servername: this.#host } : {}),
            minVersion: 'TLSv1.2',
          });
    if (secure !== undefined) socket.setNoDelay(true);
    this.#socket = socket;
    let connected = false;
    const connecting = new Promise<void>((resolve, reject) => {
      const timeoutMs = this.#options.connectTimeoutMs;
      const timer = setTimeout(() => {
        const why = connected
          ? `provider ${this.address} accepted the connection but answered nothing within ${timeoutMs} ms (connectTimeoutMs): its process is stopped, hung or too busy to read`
          : `connect to ${this.address} timed out after ${timeoutMs} ms`;
        this.#lastError = new RpcError(RpcCode.UNAVAILABLE, why);
        socket.destroy();
      }, timeoutMs);
      this.#settleConnect = (error) => {
        clearTimeout(timer);
        this.#settleConnect = undefined;
        if (error === undefined) resolve();
        else reject(neverSent(error.rawMessage, error));
      };
      socket.once(secure === undefined ? 'connect' : 'secureConnect', () => {
        connected = true;
        this.#onConnected(socket);
      });
    });
    socket.on('error', (error) => {
      // A socket given up already (a protocol violation) must not overwrite why.
      if (this.#socket !== socket) return;
      this.#lastError = secure !== undefined ? tlsError(this.address, error) : RpcError.from(error, RpcCode.UNAVAILABLE);
    });
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      const why = !connected
        ? `connect to ${this.address} failed`
        : this.#answered
          ? `connection to ${this.address} closed by the provider`
          : `connection to ${this.address} closed by the provider before it answered anything (a provider that requires TLS closes plaintext connections this way)`;
      this.#onLost(socket, this.#lastError ?? new RpcError(RpcCode.UNAVAILABLE, why));
    });
    return connecting;
  }

  /** Connected: starts reading, and asks the provider for the frame that makes this ready. */
  #onConnected(socket: net.Socket): void {
    this.#goingAway = false;
    this.#writer = new FrameWriter(socket, this.#options.maxUnsentBytes);
    this.#askLoad = this.#options.onLoad === undefined ? 0 : ASK_LOAD_REQUESTS;
    this.#lastReadAt = monotonicNow();
    this.#heartbeatSentAt = this.#lastReadAt;
    this.#writer.write(encodeFrame(FrameType.HEARTBEAT, 0));
    const decoder = new FrameDecoder(this.#options.maxFrameBytes);
    this.#decoder = decoder;
    this.#partialSince = undefined;
    this.#answered = false;
    this.#noop = new NoopFrameBudget();
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket !== socket) return;
      this.#lastReadAt = monotonicNow();
      this.#answered = true;
      try {
        decoder.push(chunk, (frame) => this.#onFrame(frame));
        if (this.#settleConnect !== undefined && decoder.frames > 0 && this.#socket === socket) this.#onReady();
      } catch (error) {
        // A TLS record (0x15 alert or 0x16 handshake, then version 3.x) where a frame should
        // be: the provider speaks TLS and this consumer does not.
        const speaksTls = this.#tls === undefined && chunk.length >= 2 && (chunk[0] === 0x15 || chunk[0] === 0x16) && chunk[1] === 0x03;
        if (speaksTls) {
          this.#lastError = new RpcError(
            RpcCode.UNAVAILABLE,
            `provider ${this.address} speaks TLS: set tls on this client's tcp transport ({ type: 'tcp', options: { tls: { ca } } })`,
          );
          socket.destroy();
        } else if (decoder.frames === 0) {
          // Not one frame of the protocol from this peer (an HTTP server, an SSH banner, any
          // other service a registry can name): it ran none of the calls sent to it, so they
          // may go to another provider, as for a refused connect.
          const reason = RpcError.from(error, RpcCode.INTERNAL).rawMessage;
          this.#violation(
            socket,
            new RpcError(RpcCode.UNAVAILABLE, `${this.address} does not speak the shuttle protocol (${reason})`, {
              cause: error,
              details: { neverSent: true, protocol: true },
            }),
          );
        } else {
          this.#violation(socket, RpcError.from(error, RpcCode.INTERNAL));
        }
      }
    });
    this.#armHeartbeat(socket);
  }

  /**
   * Sets the connection's one timer for its next check: when the silence reaches
   * `heartbeatIntervalMs` (send a HEARTBEAT), when a HEARTBEAT sent has waited
   * `heartbeatTimeoutMs` (the provider is gone), and at least every half interval (a frame that
   * trickles, see #partialFrameStalled). A fixed half-interval tick had found a provider that
   * went silent only 15–20 s after its last byte with the default 10 s + 5 s (17.9 s measured,
   * a SIGSTOPped or busy-looping provider), since the silence and the wait for the answer were
   * each rounded up to the next tick; the calls on it waited that long.
   */
  #armHeartbeat(socket: net.Socket): void {
    const now = monotonicNow();
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = this.#options;
    const due = this.#heartbeatSentAt > this.#lastReadAt ? this.#heartbeatSentAt + heartbeatTimeoutMs : this.#lastReadAt + heartbeatIntervalMs;
    const delay = Math.max(1, Math.min(Math.floor(heartbeatIntervalMs / 2), Math.ceil(due - now)));
    this.#heartbeatTimer = setTimeout(() => {
      if (this.#socket !== socket || socket.destroyed) return;
      this.#checkHeartbeat(socket);
      if (this.#socket === socket && !socket.destroyed) this.#armHeartbeat(socket);
    }, delay);
    this.#heartbeatTimer.unref();
  }

  /** The provider's first frame arrived: calls may be written. */
  #onReady(): void {
    if (this.#state !== 'connecting') return;
    this.#state = 'ready';
    this.#connecting = undefined;
    // A GOAWAY as the first frame (a provider at its connection limit) keeps its reason.
    if (!this.#goingAway) this.#lastError = undefined;
    this.#backoff.reset();
    this.#settleConnect?.();
  }

  #checkHeartbeat(socket: net.Socket): void {
    const now = monotonicNow();
    if (this.#partialFrameStalled(now)) {
      const limitMs = this.#options.heartbeatIntervalMs + this.#options.heartbeatTimeoutMs;
      this.#violation(
        socket,
        new RpcError(
          RpcCode.INTERNAL,
          `protocol error: a frame from provider ${this.address} did not complete within ${limitMs} ms (heartbeatIntervalMs + heartbeatTimeoutMs)`,
        ),
      );
      return;
    }
    const silentFor = now - this.#lastReadAt;
    if (this.#heartbeatSentAt > this.#lastReadAt && now - this.#heartbeatSentAt >= this.#options.heartbeatTimeoutMs) {
      this.#lastError = new RpcError(RpcCode.UNAVAILABLE, `provider ${this.address} did not answer a heartbeat within ${this.#options.heartbeatTimeoutMs} ms`);
      socket.destroy();
    } else if (silentFor >= this.#options.heartbeatIntervalMs && this.#heartbeatSentAt <= this.#lastReadAt) {
      this.#heartbeatSentAt = now;
      this.#writer?.write(encodeFrame(FrameType.HEARTBEAT, 0));
    }
  }

  /**
   * Whether one frame has been arriving for longer than a silent provider has to answer a
   * heartbeat (`heartbeatIntervalMs + heartbeatTimeoutMs`, 15 s by default, 8 MiB at 4.5 Mbit/s).
   * A provider that sends a frame's bytes a few at a time keeps the heartbeat satisfied while
   * the consumer holds the frame's buffer, up to maxFrameBytes, for as long as it likes. This
   * side never stops reading its socket, so a frame that does not complete while bytes still
   * come is the provider's doing.
   */
  #partialFrameStalled(now: number): boolean {
    const decoder = this.#decoder;
    if (decoder === undefined || !decoder.inFrame) {
      this.#partialSince = undefined;
      return false;
    }
    if (this.#partialSince === undefined || this.#partialFrames !== decoder.frames) {
      this.#partialSince = now;
      this.#partialFrames = decoder.frames;
      return false;
    }
    // A provider that has gone silent mid-frame is the heartbeat's to find (UNAVAILABLE, a hung
    // peer); this is one that keeps sending without finishing.
    const trickling = now - this.#lastReadAt < this.#options.heartbeatIntervalMs;
    return trickling && now - this.#partialSince >= this.#options.heartbeatIntervalMs + this.#options.heartbeatTimeoutMs;
  }

  /**
   * The provider broke the protocol: say why in a GOAWAY (as a provider does to a consumer),
   * count it, tell the client, and close; the calls in flight fail with `error`. The socket is
   * given up at once: nothing more is parsed from it, and the connection's next socket is made
   * as after any loss.
   */
  #violation(socket: net.Socket, error: RpcError): void {
    if (this.#socket !== socket) return;
    this.protocolErrors++;
    this.#options.onViolation?.(this.address, error);
    // The frames this side queued first, then the GOAWAY, then FIN; the socket closes when the
    // provider closes its side, or after a second. Until then what arrives is read and dropped
    // unparsed (see the 'data' listener): a socket closed with unread bytes is reset, and a
    // reset right behind the GOAWAY can make the provider lose it unread.
    this.#writer?.flush();
    socket.end(encodeErrorFrame(FrameType.GOAWAY, 0, error));
    setTimeout(() => socket.destroy(), 1000).unref();
    this.#onLost(socket, error, true);
  }

  /**
   * The socket is gone (or, `ending`, closing after a GOAWAY): fail its calls and hold new ones
   * off for a backoff. The next connect is made by the next call after it, never by a timer:
   * a registry can list any number of addresses that do not answer, and reconnecting to each in
   * the background would hold a timer per address and a socket per connect under way for as long
   * as the address is listed (3,000 refusing addresses: 6,800 connects in 6 s with no call made).
   */
  #onLost(socket: net.Socket, error: RpcError, ending = false): void {
    if (this.#socket !== socket) return;
    if (ending) this.#socket = undefined;
    this.#teardown(error);
    if (this.#state === 'shutdown') return;
    this.#state = 'transient-failure';
    this.#lastError = error;
    this.#retryAt = monotonicNow() + this.#backoff.next();
  }

  #teardown(error: RpcError): void {
    this.#settleConnect?.(error);
    clearTimeout(this.#heartbeatTimer);
    this.#deadlines.clear();
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#writer = undefined;
    this.#connecting = undefined;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    // These calls were sent: their handlers may have run (or still be running) on the provider.
    const inFlight = pending.length === 0 ? error : lostInFlight(error);
    for (const call of pending) this.#finish(call, inFlight);
    this.#drained.done();
  }

  #sendUnary(invocation: Invocation, serializer: Serializer): Promise<unknown> {
    const route = this.#route(invocation);
    const frame = this.#prepare(invocation, route, serializer, false);
    if (frame instanceof RpcError) return Promise.reject(frame);
    const target = (route as CachedRoute).target;
    const id = this.#takeId(frame);
    if (invocation.oneWay) {
      this.#writer!.write(frame);
      return Promise.resolve(undefined);
    }
    const call = new UnaryCall(target, invocation.deadline, serializer);
    this.#track(id, call, invocation);
    this.#writer!.write(frame);
    return call.answer;
  }

  #sendStream(invocation: Invocation, serializer: Serializer): Promise<ClientStream> {
    const route = this.#route(invocation);
    const frame = this.#prepare(invocation, route, serializer, true);
    if (frame instanceof RpcError) return Promise.reject(frame);
    const target = (route as CachedRoute).target;
    const id = this.#takeId(frame);
    const window = this.#options.streamWindowBytes;
    const step = grantStep(window);
    let consumed = 0;
    const call = new StreamCall(
      target,
      invocation.deadline,
      serializer,
      window,
      // Credit goes back to the provider only as the reader takes chunks, in steps of half the
      // window or 32 KiB, whichever is less (grantStep).
      (bytes) => {
        consumed += bytes;
        if (consumed >= step && this.#pending.get(id) === call) {
          this.#writer?.write(encodeWindowUpdate(id, consumed));
          call.granted(consumed);
          consumed = 0;
        }
      },
      (reason) => this.#abandon(id, reason),
    );
    this.#track(id, call, invocation);
    this.#writer!.write(frame);
    return Promise.resolve(call.stream);
  }

  /** Encodes a REQUEST (its id still to be written); an RpcError when the call cannot be sent now. */
  #prepare(invocation: Invocation, route: CachedRoute | RpcError, serializer: Serializer, stream: boolean): Buffer | RpcError {
    const writer = this.#writer;
    if (writer === undefined || this.#goingAway) return neverSent(`connection to ${this.address} is not ready`);
    if (writer.overBudget) {
      // The provider is not reading (hung, overloaded, or hostile): queueing more would only
      // grow this process. Refused before sending, so the call can go to another provider.
      return neverSent(
        `${writer.unsentBytes} bytes of requests wait unsent to provider ${this.address}, over this connection's limit (maxUnsentBytes ${this.#options.maxUnsentBytes}); the provider is not reading`,
      );
    }
    if (route instanceof RpcError) return route;
    try {
      return this.#encodeRequest(invocation, route, serializer, stream);
    } catch (error) {
      return RpcError.from(error, RpcCode.INVALID_ARGUMENT);
    }
  }

  /** Gives a prepared REQUEST the next id (written into its header) and returns the id. */
  #takeId(frame: Buffer): number {
    const id = this.#nextId;
    this.#nextId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    frame.writeUInt32BE(Math.floor(id / 2 ** 32), 8);
    frame.writeUInt32BE(id >>> 0, 12);
    return id;
  }

  /** Registers a call in flight with its deadline and abort signal. */
  #track(id: number, call: PendingCall, invocation: Invocation): void {
    this.#pending.set(id, call);
    if (invocation.deadline !== undefined) this.#deadlines.add(id, invocation.deadline);
    const signal = invocation.signal;
    if (signal !== undefined) {
      call.signal = signal;
      call.onAbort = () => this.#abandon(id, cancelledError(invocation, signal));
      listenAbort(signal, call.onAbort);
    }
  }

  /** The call's encoded route, cached; an RpcError when a name cannot be encoded. */
  #route(invocation: Invocation): CachedRoute | RpcError {
    const identity = invocation.route;
    if (identity !== undefined) {
      const cached = this.#routesByIdentity.get(identity);
      if (cached !== undefined) return cached;
    }
    const key = `${invocation.service}\u0000${invocation.version}\u0000${invocation.group}\u0000${invocation.method}`;
    let route = this.#routes.get(key);
    if (route === undefined) {
      try {
        route = {
          bytes: encodeRoute(invocation.service, invocation.version, invocation.group, invocation.method),
          target: { service: invocation.service, method: invocation.method, kind: 'response' },
        };
      } catch (error) {
        return RpcError.from(error, RpcCode.INVALID_ARGUMENT);
      }
      this.#routes.set(key, route);
    }
    if (identity !== undefined) this.#routesByIdentity.set(identity, route);
    return route;
  }

  #encodeRequest(invocation: Invocation, route: CachedRoute, serializer: Serializer, stream: boolean): Buffer {
    // The wire carries the remaining time, not the absolute deadline (see server-connection).
    let meta: Metadata = invocation.metadata;
    if (stream) meta = { ...meta, [WINDOW_META]: String(this.#options.streamWindowBytes) };
    if (this.#askLoad > 0) {
      meta = { ...meta, [ACCEPT_LOAD_META]: '1' };
      this.#askLoad--;
    }
    const timeout = invocation.deadline === undefined ? undefined : String(Math.max(0, invocation.deadline - monotonicNow()));
    const timeoutKey = timeout === undefined ? undefined : TIMEOUT_META;
    const metaLength = measureMeta(meta, timeoutKey, timeout);
    const payload = serializer.encode(invocation.request, { service: invocation.service, method: invocation.method, kind: 'request' });
    const bodyLength = route.bytes.length + metaLength + payload.length;
    if (bodyLength > this.#options.maxFrameBytes) {
      throw oversizedMessage(`the request of ${invocation.service}.${invocation.method}`, bodyLength, this.#options.maxFrameBytes, { neverSent: true });
    }
    const frame = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
    const flags = (invocation.oneWay ? FrameFlag.ONE_WAY : 0) | (stream ? FrameFlag.STREAM : 0);
    writeHeader(frame, 0, FrameType.REQUEST, flags, serializer.id, 0, 0, bodyLength);
    let offset = HEADER_BYTES;
    offset += route.bytes.copy(frame, offset);
    offset = writeMeta(frame, offset, meta, timeoutKey, timeout);
    frame.set(payload, offset);
    return frame;
  }

  /** The caller gave up (deadline, abort, reader left): fail locally and tell the provider to stop. */
  #abandon(id: number, error: RpcError): void {
    const call = this.#pending.get(id);
    if (call === undefined) return;
    this.#pending.delete(id);
    // What the provider sent before it reads the CANCEL arrives for no call: not a flood.
    this.#noop.allow(call.strayFrames);
    // The status byte says why, so the provider's handler sees "deadline exceeded" rather than
    // a plain cancel when the consumer's deadline timer fired first.
    this.#writer?.write(
      encodeFrame(FrameType.CANCEL, id, undefined, { status: error.code === RpcCode.DEADLINE_EXCEEDED ? RpcCode.DEADLINE_EXCEEDED : RpcCode.CANCELLED }),
    );
    this.#finish(call, error);
    if (this.#pending.size === 0) this.#drained.done();
  }

  #onFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.RESPONSE:
      case FrameType.STREAM_CHUNK:
      case FrameType.STREAM_END: {
        const call = this.#pending.get(frame.requestId);
        // Unknown ids belong to calls abandoned after a deadline or abort, or to a confused or
        // hostile provider (a duplicate answer): drop the frame, count it. Ids are never
        // reused while a call is pending, so a stray frame can never resolve another call.
        if (call === undefined) {
          this.droppedFrames++;
          if (this.#noop.spend()) throw noopFlood('provider');
          return;
        }
        if (call.accept(frame)) {
          this.#pending.delete(frame.requestId);
          this.#release(call);
          if (this.#pending.size === 0) this.#drained.done();
        }
        return;
      }
      case FrameType.HEARTBEAT:
        if (this.#noop.spend()) throw noopFlood('provider');
        this.#answerHeartbeat(frame.requestId);
        return;
      case FrameType.HEARTBEAT_ACK:
        if (this.#noop.spend()) throw noopFlood('provider');
        return;
      case FrameType.LOAD: {
        // The provider's load as of its latest answers; the client checks the untrusted bytes.
        this.#askLoad = 0;
        const now = monotonicNow();
        if (now - this.#loadAt < MIN_LOAD_INTERVAL_MS) {
          this.droppedLoads++;
          if (this.#noop.spend()) throw noopFlood('provider');
          return;
        }
        this.#loadAt = now;
        this.#options.onLoad?.(this.address, frame.body);
        return;
      }
      case FrameType.GOAWAY:
        if (this.#noop.spend()) throw noopFlood('provider');
        // The provider is draining: no new calls here; the ones in flight still get answers. A
        // GOAWAY with an error body says why the provider is about to close the connection.
        this.#goingAway = true;
        if (frame.body.length > 0) {
          this.#lastError = new RpcError(RpcCode.UNAVAILABLE, `connection to ${this.address} closed by the provider: ${decodeWireError(frame).message}`);
        }
        return;
      default:
        throw new RpcError(RpcCode.INTERNAL, `protocol error: unexpected frame type ${frame.type} from provider ${this.address}`);
    }
  }

  /**
   * Answers a provider's HEARTBEAT, unless this side answered one less than MIN_ACK_INTERVAL_MS
   * ago or the bytes it queued for the provider are over budget (the provider is not reading):
   * what a provider's heartbeats can make this side queue is then bounded, however many it sends.
   */
  #answerHeartbeat(id: number): void {
    const writer = this.#writer;
    const now = monotonicNow();
    if (writer === undefined || writer.overBudget || now - this.#ackedAt < MIN_ACK_INTERVAL_MS) return;
    this.#ackedAt = now;
    writer.write(encodeFrame(FrameType.HEARTBEAT_ACK, id));
  }

  #finish(call: PendingCall, error: RpcError): void {
    this.#release(call);
    call.fail(error);
  }

  #release(call: PendingCall): void {
    if (call.onAbort !== undefined) unlistenAbort(call.signal, call.onAbort);
  }
}

/**
 * A TLS failure as an UNAVAILABLE error with OpenSSL's reason and, for the common mistakes,
 * what to change; other socket errors map as usual.
 */
function tlsError(address: string, error: Error): RpcError {
  const reason = tlsReason((error as { reason?: string }).reason ?? error.message);
  if (!isTlsFailure(reason, (error as NodeJS.ErrnoException).code)) return RpcError.from(error, RpcCode.UNAVAILABLE);
  return new RpcError(RpcCode.UNAVAILABLE, `TLS with ${address} failed: ${reason}${tlsHint(reason)}`, { cause: error });
}
