import type net from 'node:net';
import type grpc from '@grpc/grpc-js';

/** The part of grpc-js's secure connector this file touches (grpc-js channel-credentials.ts). */
interface SecureConnector {
  connect?: (socket: net.Socket) => Promise<unknown>;
  waitForReady?: () => Promise<void>;
}

/** What one channel's connects hold, and whether the channel may connect at all. */
export interface ChannelSockets {
  /** Its sockets past TCP connect (before TLS and HTTP/2), until each closes. */
  readonly sockets: Set<net.Socket>;
  /** Set when the channel is closed: a connect that starts afterwards is refused before it dials. */
  closed: boolean;
  /**
   * Set while no connect of the connection waits on the channel: a socket that comes up then is
   * destroyed, since it would be a connect outside the consumer's gate.
   */
  paused: boolean;
}

const closedError = (): Error => new Error('refused: the channel is closed, or no connect waits on it');

/**
 * Returns `credentials`, changed so that each connect of a channel built on them reports its
 * socket to `watch` once TCP is up, and dials nothing once `watch.closed` is set.
 *
 * Why both: grpc-js gives a connect no time limit and keeps its socket when the channel is closed
 * while it connects (a peer that accepts and never starts HTTP/2 held it for good, still open
 * after `close()`), so the connection destroys the sockets of a connect it gave up on. And a
 * channel closed after a failed connect still connects once more: its subchannel was told to
 * reconnect when its backoff ends, and closing does not cancel that (200 refusing addresses:
 * 370 connects in the second after their channels were closed); grpc-js asks the connector
 * whether it is ready just before it dials, and is told no.
 *
 * grpc-js 1.14 makes a connector per subchannel (`_createSecureConnector`), awaits its
 * `waitForReady()` before the TCP connect and hands it the TCP socket (`connect(socket)`);
 * should it rename these, the credentials are used as they are.
 */
export function watchSockets(credentials: grpc.ChannelCredentials, watch: ChannelSockets): grpc.ChannelCredentials {
  const internal = credentials as unknown as { _createSecureConnector?: (...args: unknown[]) => SecureConnector };
  const create = internal._createSecureConnector;
  if (typeof create !== 'function') return credentials;
  internal._createSecureConnector = function (this: unknown, ...args: unknown[]): SecureConnector {
    const connector = create.apply(this, args);
    const { connect, waitForReady } = connector;
    if (typeof waitForReady === 'function') {
      connector.waitForReady = async function (this: unknown): Promise<void> {
        if (watch.closed) throw closedError();
        await waitForReady.call(this);
        if (watch.closed) throw closedError();
      };
    }
    if (typeof connect === 'function') {
      connector.connect = function (this: unknown, socket: net.Socket): Promise<unknown> {
        if (watch.closed || watch.paused) {
          socket.destroy();
          return Promise.reject(closedError());
        }
        watch.sockets.add(socket);
        socket.once('close', () => watch.sockets.delete(socket));
        return connect.call(this, socket);
      };
    }
    return connector;
  };
  return credentials;
}
