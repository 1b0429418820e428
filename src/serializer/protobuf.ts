import protobuf from 'protobufjs';
import { RpcCode, RpcError } from '../errors/errors.js';
import { checkKnownKeys, invalidOption } from '../common/validate.js';
import type { ExtensionOptions } from '../spi/extension-registry.js';
import { SerializerId, type PayloadTarget, type Serializer } from './serializer.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'protobuf';

/** Options of {@link createProtobufSerializer}. */
export interface ProtobufSerializerOptions {
  /** Local .proto files that declare the services (package + service name = shuttle service name). */
  files: readonly string[];
}

/**
 * Protocol Buffers through protobufjs, with the schema read from local .proto files (never
 * fetched). A shuttle service `inference.LLM` maps to `service LLM` in `package inference`; a
 * method maps to the rpc of the same name, or of the same name with its first letter in upper
 * case (`embed` -> `Embed`, the usual .proto spelling). The request value is the rpc's input
 * message and the response value its output message, as plain objects (64-bit integers as
 * strings, enums as numbers, bytes as Uint8Array).
 */
export function createProtobufSerializer(options: ProtobufSerializerOptions | ExtensionOptions): Serializer {
  checkKnownKeys('protobuf serializer options', options ?? {}, ['files']);
  const files = (options as ProtobufSerializerOptions).files;
  if (!Array.isArray(files) || files.length === 0 || !files.every((file) => typeof file === 'string')) {
    throw invalidOption('protobuf files', files, 'a non-empty list of local .proto file paths');
  }
  const root = new protobuf.Root().loadSync([...files], { keepCase: true });
  root.resolveAll();
  const types = new Map<string, protobuf.Type>();

  const typeFor = (target: PayloadTarget): protobuf.Type => {
    const cacheKey = `${target.service}\u0000${target.method}\u0000${target.kind}`;
    let type = types.get(cacheKey);
    if (type === undefined) {
      type = resolveType(root, target);
      types.set(cacheKey, type);
    }
    return type;
  };

  return {
    id: SerializerId.PROTOBUF,
    name: TYPE_NAME,
    encode(value, target) {
      const type = typeFor(target);
      const message = value === undefined ? {} : value;
      if (message === null || typeof message !== 'object') {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `${target.service}.${target.method} ${target.kind} must be an object for ${type.fullName.slice(1)}, got ${typeof message}`);
      }
      const problem = type.verify(message as Record<string, unknown>);
      if (problem !== null) {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `${target.service}.${target.method} ${target.kind} does not fit ${type.fullName.slice(1)}: ${problem}`);
      }
      return type.encode(type.fromObject(message as Record<string, unknown>)).finish();
    },
    decode(bytes, target) {
      const type = typeFor(target);
      return type.toObject(type.decode(bytes), { longs: String, enums: Number, bytes: Uint8Array, defaults: true });
    },
  };
}

function resolveType(root: protobuf.Root, target: PayloadTarget): protobuf.Type {
  const service = root.lookup(target.service);
  if (!(service instanceof protobuf.Service)) {
    throw new RpcError(RpcCode.UNIMPLEMENTED, `no service ${target.service} in the loaded .proto files`);
  }
  const capitalised = target.method.charAt(0).toUpperCase() + target.method.slice(1);
  const method = Object.hasOwn(service.methods, target.method)
    ? service.methods[target.method]
    : Object.hasOwn(service.methods, capitalised)
      ? service.methods[capitalised]
      : undefined;
  if (method === undefined) {
    throw new RpcError(RpcCode.UNIMPLEMENTED, `no rpc ${target.method} (or ${capitalised}) in service ${target.service} of the loaded .proto files`);
  }
  method.resolve();
  const type = target.kind === 'request' ? method.resolvedRequestType : method.resolvedResponseType;
  if (type === null) throw new RpcError(RpcCode.INTERNAL, `unresolved ${target.kind} type of ${target.service}.${method.name}`);
  return type;
}
