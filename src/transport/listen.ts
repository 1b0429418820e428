import type net from 'node:net';
import type { ListenOptions } from './transport.js';

/**
 * Starts `server` listening on the options' host and port; resolves with the address actually
 * bound (port 0 picks a free one), or rejects with the listen error (EADDRINUSE…) without
 * leaving an error listener behind. Shared by the tcp and grpc transports.
 */
export function listenOn(server: net.Server, options: ListenOptions): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
