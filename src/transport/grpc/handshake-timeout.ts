import type grpc from '@grpc/grpc-js';

/**
 * Bounds the TLS handshake of connections served with `credentials` to `timeoutMs`.
 *
 * grpc-js builds its HTTP/2 server from the credentials' constructor options and sets no
 * handshake timeout, so Node's default of 120 s applied: a peer that opened TCP connections and
 * sent half a ClientHello held each socket for two minutes. The timeout is added to those options
 * (the hook grpc-js reads them through, `_getConstructorOptions`); insecure credentials are
 * returned as they are.
 */
export function withHandshakeTimeout(credentials: grpc.ServerCredentials, timeoutMs: number): grpc.ServerCredentials {
  if (!credentials._isSecure()) return credentials;
  const options = credentials._getConstructorOptions.bind(credentials);
  credentials._getConstructorOptions = () => ({ ...options(), handshakeTimeout: timeoutMs });
  return credentials;
}
