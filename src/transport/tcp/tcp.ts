import { checkKnownKeys } from '../../common/validate.js';
import type { ExtensionFactory } from '../../spi/extension-registry.js';
import type { Transport } from '../transport.js';
import { TcpConnection } from './tcp-connection.js';
import { listenTcp } from './tcp-server.js';

/** The name this transport is registered under. */
export const TYPE_NAME = 'tcp';

/** The shuttle frame protocol over TCP (docs/PROTOCOL.md); the default transport. */
export const createTcpTransport: ExtensionFactory<Transport> = (options) => {
  checkKnownKeys('tcp transport options', options, []);
  return {
    name: TYPE_NAME,
    listen: (handler, listenOptions) => listenTcp(handler, listenOptions),
    connect: (host, port, connectOptions) => new TcpConnection(host, port, connectOptions),
  };
};
