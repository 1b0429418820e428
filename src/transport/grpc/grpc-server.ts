import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { MAX_TIMER_MS } from '../../common/validate.js';
import { ConnectionAdmission, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../admission.js';
import { listenOn } from '../listen.js';
import type { CallHandler, ListenOptions, TransportServer } from '../transport.js';
import { registerRoutes, ServingState } from './grpc-calls.js';
import { whenCredentialsLoaded, withHandshakeTimeout } from './server-credentials.js';
import { awaitPreface } from './preface.js';
import type { GrpcSettings } from './settings.js';
import { StandardServices } from './standard-services.js';
import { RequestBudget } from './request-budget.js';
import { UnsentBudget } from './unsent-budget.js';
import { monotonicNow } from '../../common/clock.js';

/**
 * The provider pings each consumer this often unless `keepaliveTimeMs` says otherwise, and
 * closes the connection when a ping goes unanswered for `keepaliveTimeoutMs` (20 s, gRPC's
 * default): a peer that vanished, or that stopped reading its socket, is let go within a
 * minute even while its calls run. HTTP/2 stacks answer pings themselves, so a busy but
 * reading consumer always passes.
 */
const PROVIDER_KEEPALIVE_TIME_MS = 30_000;
const PROVIDER_KEEPALIVE_TIMEOUT_MS = 20_000;

/**
 * Serves the handler's services over gRPC. The listening socket is our own `net.Server`, whose
 * connections are handed to grpc-js through a connection injector: that keeps the count of
 * connections, the per-address limit and the preface deadline in our hands while grpc-js does
 * HTTP/2. The connection limits map onto grpc-js's server options (grpcServerOptions). The
 * standard health and reflection services are served beside the methods (standard-services.ts).
 */
export async function listenGrpc(handler: CallHandler, options: ListenOptions, settings: GrpcSettings): Promise<TransportServer> {
  const limits = options.limits ?? DEFAULT_CONNECTION_LIMITS;
  const requests = new RequestBudget({
    perConnection: limits.maxDecodedBytesPerConnection,
    total: limits.maxTotalDecodedBytes,
    maxMessageBytes: options.maxFrameBytes,
    readTimeoutMs: limits.frameTimeoutMs,
  });
  const server = new grpc.Server({
    ...grpcServerOptions(limits, options.maxFrameBytes, settings),
    ...settings.channelOptions,
    interceptors: [requests.interceptor()],
  });
  const state = new ServingState(
    new UnsentBudget(limits.maxUnsentBytes, limits.maxTotalUnsentBytes),
    options.maxFrameBytes,
    options.loadReport,
    (metadata) => requests.deadlineOf(metadata),
    limits.frameTimeoutMs,
  );
  registerRoutes(server, handler, settings, state);
  const standard = new StandardServices(handler.services(), settings);
  standard.addTo(server);

  const credentials = withHandshakeTimeout(settings.serverCredentials(), limits.frameTimeoutMs);
  const injector = server.createConnectionInjector(credentials);
  try {
    await whenCredentialsLoaded(credentials, CREDENTIALS_LOAD_TIMEOUT_MS, 'grpc transport tls');
  } catch (error) {
    injector.destroy();
    throw error;
  }
  const sockets = new Set<net.Socket>();
  let shutDown = false;
  const admission = new ConnectionAdmission(limits, options.onRefused);
  const listener = net.createServer({ noDelay: true }, (socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    socket.on('error', () => {});
    // Over a limit: closed before HTTP/2 starts (the client sees UNAVAILABLE).
    if (admission.admit(address) !== undefined) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      admission.release(address);
    });
    // A TLS handshake must finish within frameTimeoutMs (withHandshakeTimeout); its HTTP/2
    // preface, inside TLS, is bounded by the idle timeout, which grpc-js starts with the session.
    if (settings.secure) return injector.injectConnection(socket);
    // While draining, new connections are still served (health probes hear NOT_SERVING), until
    // the injector is gone.
    void awaitPreface(socket, limits.frameTimeoutMs).then((whole) => (whole && !shutDown ? injector.injectConnection(socket) : socket.destroy()));
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
    get budgets() {
      return [{ budget: 'maxTotalDecodedBytes' as const, used: requests.used, limit: limits.maxTotalDecodedBytes }];
    },
    close(closeOptions = {}) {
      closing ??= (async () => {
        const until = monotonicNow() + Math.min(closeOptions.timeoutMs ?? 10_000, MAX_TIMER_MS);
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
          timer = setTimeout(
            () => {
              server.forceShutdown();
              resolve();
            },
            Math.max(0, Math.min(until - monotonicNow(), SHUTDOWN_GRACE_MS)),
          );
        });
        clearTimeout(timer);
        shutDown = true;
        injector.destroy();
        for (const socket of sockets) socket.destroy();
        await stopped;
      })();
      return closing;
    },
  };
}

/** How long a provider waits for grpc-js to read its certificate files before it gives up listening. */
const CREDENTIALS_LOAD_TIMEOUT_MS = 10_000;

/** How long GOAWAY waits for the streams that outlive the drain (health watches) before cancelling them. */
const SHUTDOWN_GRACE_MS = 250;

/**
 * The shared connection limits in grpc-js's terms: idle connections (no call running) closed
 * with a GOAWAY after `idleTimeoutMs`; `maxCallsPerConnection` announced as HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS; an optional maximum connection age and its grace; and
 * keepalive pings that close connections whose peer stopped answering. `channelOptions`
 * given to the transport override any of these.
 */
export function grpcServerOptions(
  limits: ConnectionLimits,
  maxFrameBytes: number,
  settings: Pick<GrpcSettings, 'keepaliveTimeMs' | 'keepaliveTimeoutMs'>,
): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': maxFrameBytes,
    'grpc.max_connection_idle_ms': limits.idleTimeoutMs,
    'grpc.max_concurrent_streams': limits.maxCallsPerConnection,
    // channelz (per-call trackers and clock reads for a channelz service shuttle does not serve).
    'grpc.enable_channelz': 0,
    'grpc.keepalive_time_ms': settings.keepaliveTimeMs ?? PROVIDER_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': settings.keepaliveTimeoutMs ?? PROVIDER_KEEPALIVE_TIMEOUT_MS,
    ...(limits.maxConnectionAgeMs > 0 ? { 'grpc.max_connection_age_ms': limits.maxConnectionAgeMs } : {}),
    ...(limits.maxConnectionAgeGraceMs > 0 ? { 'grpc.max_connection_age_grace_ms': limits.maxConnectionAgeGraceMs } : {}),
  };
}
