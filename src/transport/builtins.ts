import type { BuiltinExtension } from '../common/extension-registry.js';
import { createGrpcTransport, TYPE_NAME as GRPC } from './grpc/grpc.js';
import { createTcpTransport, TYPE_NAME as TCP } from './tcp/tcp.js';
import type { Transport } from './transport.js';

/** The built-in transports: the shuttle frame protocol over TCP, and gRPC. */
export const BUILTIN_TRANSPORTS: readonly BuiltinExtension<Transport>[] = [
  { name: TCP, factory: createTcpTransport },
  { name: GRPC, factory: createGrpcTransport },
];
