import net from 'node:net';
import { ConnectionAdmission, DEFAULT_CONNECTION_LIMITS } from '../admission.js';
import { FrameType } from '../frame.js';
import type { CallHandler, ListenOptions, TransportServer } from '../transport.js';
import { ServerConnection } from './server-connection.js';
import { encodeErrorFrame } from './wire-error.js';

/** Starts a tcp transport server; resolves once it listens. */
export async function listenTcp(handler: CallHandler, options: ListenOptions): Promise<TransportServer> {
  const connections = new Set<ServerConnection>();
  const limits = options.limits ?? DEFAULT_CONNECTION_LIMITS;
  const admission = new ConnectionAdmission(limits);
  const server = net.createServer({ noDelay: true }, (socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const refused = admission.admit(address);
    if (refused !== undefined) {
      // Say why before closing, so the consumer's error names the limit.
      socket.on('error', () => {});
      socket.end(encodeErrorFrame(FrameType.GOAWAY, 0, refused));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const connection = new ServerConnection(socket, handler, { maxFrameBytes: options.maxFrameBytes, limits });
    connections.add(connection);
    void connection.closed.then(() => {
      connections.delete(connection);
      admission.release(address);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;

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
    close(closeOptions = {}) {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const connection of connections) connection.goAway();
        const drained = Promise.all([...connections].map((connection) => connection.idle()));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, closeOptions.timeoutMs ?? 10_000)))]);
        clearTimeout(timer);
        const closed = [...connections].map((connection) => connection.closed);
        for (const connection of connections) connection.close();
        await Promise.all(closed);
        await stopped;
      })();
      return closing;
    },
  };
}
