import type grpc from '@grpc/grpc-js';
import { invalidOption } from '../../common/validate.js';

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

/** The part of grpc-js's server credentials that says when a certificate is there to serve. */
interface WatchedCredentials {
  _getSecureContextOptions(): object | null;
  _addWatcher(watcher: (options: object | null) => void): void;
  _removeWatcher(watcher: (options: object | null) => void): void;
}

/**
 * Resolves once secure `credentials` have a certificate to serve; rejects naming `where` if they
 * have none within `timeoutMs`. Call it after grpc-js has started watching them (after
 * `createConnectionInjector`) and before accepting connections.
 *
 * Credentials that watch certificate files read them asynchronously once watched, and until that
 * read lands grpc-js drops every connection it is handed. A provider that listened and announced
 * itself at once lost the first connections of its consumers (seen on a loaded machine: a consumer
 * connecting in the first 20 ms was reset).
 */
export function whenCredentialsLoaded(credentials: grpc.ServerCredentials, timeoutMs: number, where: string): Promise<void> {
  const watched = credentials as unknown as WatchedCredentials;
  if (!credentials._isSecure() || watched._getSecureContextOptions() !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const watcher = (options: object | null): void => {
      if (options === null) return;
      finish();
      resolve();
    };
    const timer = setTimeout(() => {
      finish();
      reject(invalidOption(where, 'certificate files', `files grpc-js can load as a certificate and key within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      watched._removeWatcher(watcher);
    };
    watched._addWatcher(watcher);
  });
}
