import type { ExtensionFactory } from '../../common/extension-registry.js';
import type { Transport } from '../transport.js';
import { GrpcConnection } from './grpc-connection.js';
import { listenGrpc } from './grpc-server.js';
import { resolveGrpcSettings } from './settings.js';

export { ENVELOPE_TYPE } from './codec.js';
export type { GrpcTlsOptions, GrpcTransportOptions } from './settings.js';

/** The name this transport is registered under, and the protocol name in registry records. */
export const TYPE_NAME = 'grpc';

/**
 * gRPC over HTTP/2 through @grpc/grpc-js, for interoperability: any gRPC client (Python, Go,
 * Java Dubbo 3 Triple) can call a shuttle provider, and a shuttle consumer can call any gRPC
 * server. Services in the `protoFiles` are served as their .proto declares; others through
 * the generic envelope. Status codes, deadlines (grpc-timeout), cancellation (RST_STREAM) and
 * metadata are gRPC's own; see docs/PROTOCOL.md, "gRPC transport".
 */
export const createGrpcTransport: ExtensionFactory<Transport> = (options) => {
  const settings = resolveGrpcSettings(options);
  return {
    name: TYPE_NAME,
    listen: (handler, listenOptions) => listenGrpc(handler, listenOptions, settings),
    connect: (host, port, connectOptions) => new GrpcConnection(host, port, connectOptions, settings),
  };
};
