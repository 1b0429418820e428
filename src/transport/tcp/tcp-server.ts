import { unwatchFile, watchFile } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ConnectionAdmission, DEFAULT_CONNECTION_LIMITS } from '../admission.js';
import { ByteBudget } from '../byte-budget.js';
import { checkServerTls, type ResolvedTls } from '../tls-options.js';
import { FrameType } from '../frame.js';
import { listenOn } from '../listen.js';
import { LOAD_PUSH_EVERY_MS, type CallHandler, type ListenOptions, type TransportServer } from '../transport.js';
import { ServerConnection } from './server-connection.js';
import { encodeErrorFrame } from './wire-error.js';

/**
 * Refused sockets (connection limits) that may wait at once for their GOAWAY to leave before
 * they are closed. Each holds a file descriptor for up to a second when its peer does not read,
 * and the fd headroom the server keeps beyond its connection limits (at least 64, see
 * limitsWithinFds) is also what the process's own files and registry connections need: a flood
 * of sockets that never read, 200 every 20 ms, had taken all 256 fds of a provider with
 * `ulimit -n 256`. Past this many, a refused socket is destroyed at once, without the answer.
 */
export const MAX_REFUSED_CLOSING = 16;

/** How long a refused socket may take to send its GOAWAY before it is destroyed. */
const REFUSED_LINGER_MS = 1000;

/**
 * Starts a tcp transport server; resolves once it listens. With `secure`, it speaks TLS (mutual
 * TLS with `requireClientCert`): the handshake must finish within the frame timeout, and
 * certificate files rotated on disk are picked up for new connections without touching the
 * open ones.
 */
export async function listenTcp(handler: CallHandler, options: ListenOptions, secure?: ResolvedTls): Promise<TransportServer> {
  const connections = new Set<ServerConnection>();
  const limits = options.limits ?? DEFAULT_CONNECTION_LIMITS;
  const admission = new ConnectionAdmission(limits, options.onRefused);
  const budgets = {
    inbound: new ByteBudget(limits.maxTotalBufferedBytes, { overdrafts: true }),
    outbound: new ByteBudget(limits.maxTotalUnsentBytes),
    decoded: new ByteBudget(limits.maxTotalDecodedBytes),
  };
  let refusedClosing = 0;
  const onConnection = (socket: net.Socket): void => {
    const address = socket.remoteAddress ?? 'unknown';
    const refused = admission.admit(address);
    if (refused !== undefined) {
      socket.on('error', () => {});
      if (refusedClosing >= MAX_REFUSED_CLOSING) {
        socket.destroy();
        return;
      }
      // Say why before closing, so the consumer's error names the limit.
      refusedClosing++;
      const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
      socket.once('close', () => {
        refusedClosing--;
        clearTimeout(linger);
      });
      socket.end(encodeErrorFrame(FrameType.GOAWAY, 0, refused));
      return;
    }
    const onRefused = options.onRefused;
    const connection = new ServerConnection(socket, handler, {
      maxFrameBytes: options.maxFrameBytes,
      limits,
      budgets,
      loadReport: options.loadReport,
      onFlood: onRefused === undefined ? undefined : () => onRefused('frameFlood', address),
    });
    connections.add(connection);
    void connection.closed.then(() => {
      connections.delete(connection);
      admission.release(address);
    });
  };
  let stopWatching = (): void => {};
  let server: net.Server;
  if (secure === undefined) {
    server = net.createServer({ noDelay: true }, onConnection);
  } else {
    checkServerTls('tcp transport tls', secure);
    const contextOptions = (current: ResolvedTls): tls.SecureContextOptions => ({
      cert: current.cert,
      key: current.key,
      ...(current.ca === undefined ? {} : { ca: current.ca }),
    });
    const tlsServer = tls.createServer(
      {
        ...contextOptions(secure),
        requestCert: secure.requireClientCert,
        rejectUnauthorized: secure.requireClientCert,
        handshakeTimeout: limits.frameTimeoutMs,
        minVersion: 'TLSv1.2',
        noDelay: true,
      },
      onConnection,
    );
    // A failed handshake (a plaintext client, an unknown CA) closes that socket only.
    tlsServer.on('tlsClientError', () => {});
    const reload = (): void => {
      try {
        tlsServer.setSecureContext(contextOptions(secure.reread()));
      } catch {
        // A certificate caught half-written (or a key that does not match yet) keeps the old
        // context; the next change of the files tries again.
      }
    };
    for (const file of secure.files) watchFile(file, { interval: 500, persistent: false }, reload);
    stopWatching = () => {
      for (const file of secure.files) unwatchFile(file, reload);
    };
    server = tlsServer;
  }
  const address = await listenOn(server, options);
  let closing: Promise<void> | undefined;
  // One timer for the server, whatever the number of connections; each decides for itself.
  const pushTimer =
    options.loadReport === undefined
      ? undefined
      : setInterval(() => {
          for (const connection of connections) connection.pushLoad();
        }, LOAD_PUSH_EVERY_MS).unref();

  return {
    host: address.address,
    port: address.port,
    get connections() {
      return connections.size;
    },
    get running() {
      let total = 0;
      for (const connection of connections) total += connection.running;
      return total;
    },
    get budgets() {
      return [
        { budget: 'maxTotalBufferedBytes', used: budgets.inbound.used, limit: budgets.inbound.limit },
        { budget: 'maxTotalUnsentBytes', used: budgets.outbound.used, limit: budgets.outbound.limit },
        { budget: 'maxTotalDecodedBytes', used: budgets.decoded.used, limit: budgets.decoded.limit },
      ] as const;
    },
    close(closeOptions = {}) {
      closing ??= (async () => {
        stopWatching();
        clearInterval(pushTimer);
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const connection of connections) connection.goAway();
        const drained = Promise.all([...connections].map((connection) => connection.idle()));
        let timer: NodeJS.Timeout | undefined;
        const drainTimeoutMs = closeOptions.timeoutMs ?? 10_000;
        await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)))]);
        clearTimeout(timer);
        const closed = [...connections].map((connection) => connection.closed);
        for (const connection of connections) connection.close(drainTimeoutMs);
        await Promise.all(closed);
        await stopped;
      })();
      return closing;
    },
  };
}
