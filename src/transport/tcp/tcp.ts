import { checkKnownKeys } from '../../common/validate.js';
import type { ExtensionFactory } from '../../common/extension-registry.js';
import { resolveTls } from '../tls-options.js';
import type { Transport } from '../transport.js';
import { TcpConnection } from './tcp-connection.js';
import { listenTcp } from './tcp-server.js';

/** The name this transport is registered under. */
export const TYPE_NAME = 'tcp';

/**
 * The shuttle frame protocol over TCP (docs/PROTOCOL.md); the default transport. Options:
 * `{ tls }` (TlsOptions: cert and key on a provider, plus ca and requireClientCert for mutual
 * TLS; ca, and cert and key for mutual TLS, on a consumer).
 */
export const createTcpTransport: ExtensionFactory<Transport> = (options) => {
  checkKnownKeys('tcp transport options', options, ['tls']);
  const secure = resolveTls('tcp transport tls', options['tls']);
  return {
    name: TYPE_NAME,
    listen: (handler, listenOptions) => listenTcp(handler, listenOptions, secure),
    connect: (host, port, connectOptions) => new TcpConnection(host, port, connectOptions, secure),
  };
};
