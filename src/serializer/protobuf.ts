import { createRequire } from 'node:module';
import protobuf from 'protobufjs';
import { RpcCode, RpcError } from '../errors/errors.js';
import { checkKnownKeys, invalidOption, optionKeys } from '../common/validate.js';
import type { ExtensionOptions } from '../common/extension-registry.js';
import { MessageProblem, prepareMessage } from './protobuf-check.js';
import { SerializerId, type PayloadTarget, type Serializer } from './serializer.js';
import { selfChecked } from './guard.js';

// protobufjs's descriptor extension (CommonJS, whose names Node cannot see from ESM) also
// adds Root.fromDescriptor.
const { FileDescriptorSet } = createRequire(import.meta.url)('protobufjs/ext/descriptor') as typeof import('protobufjs/ext/descriptor.js');

/** The name this serializer is registered under. */
export const TYPE_NAME = 'protobuf';

/** Options of {@link createProtobufSerializer}. */
export interface ProtobufSerializerOptions {
  /** Local .proto files that declare the services (package + service name = shuttle service name). */
  files: readonly string[];
}

const PROTOBUF_KEYS = optionKeys<ProtobufSerializerOptions>()(['files']);

/**
 * Protocol Buffers through protobufjs, with the schema read from local .proto files (never
 * fetched). A shuttle service `inference.LLM` maps to `service LLM` in `package inference`; a
 * method maps to the rpc of the same name, or of the same name with its first letter in upper
 * case (`embed` -> `Embed`, the usual .proto spelling). The request value is the rpc's input
 * message and the response value its output message, as plain objects (64-bit integers as
 * strings, enums as numbers, bytes as Uint8Array); a 64-bit integer is sent from a number, a
 * BigInt or a decimal string. A value that is not a field of its message, or would not arrive as
 * it was sent (out of its integer type's range, a lone surrogate, a Map for a map field…), is
 * refused before anything is sent, naming its path (protobuf-check.ts).
 */
export function createProtobufSerializer(options: ProtobufSerializerOptions | ExtensionOptions): Serializer {
  checkKnownKeys('protobuf serializer options', options ?? {}, PROTOBUF_KEYS);
  const root = loadProtoFiles((options as ProtobufSerializerOptions).files, 'protobuf files');
  const codecs = new Map<string, MessageCodec>();

  const codecFor = (target: PayloadTarget): MessageCodec => {
    const cacheKey = `${target.service}\u0000${target.method}\u0000${target.kind}`;
    let codec = codecs.get(cacheKey);
    if (codec === undefined) {
      codec = messageCodec(resolveType(root, target));
      codecs.set(cacheKey, codec);
    }
    return codec;
  };

  return selfChecked({
    id: SerializerId.PROTOBUF,
    name: TYPE_NAME,
    encode: (value, target) => codecFor(target).encode(value, `${target.service}.${target.method} ${target.kind}`),
    decode: (bytes, target) => codecFor(target).decode(bytes),
  });
}

/**
 * Loads local .proto files (imports resolved next to them). Field names stay as written with
 * `keepCase` (the serializer's choice), or become lowerCamelCase (`max_tokens` ->
 * `maxTokens`, as @grpc/proto-loader and the proto3 JSON mapping do). Throws a TypeError
 * naming `key` for a list that is not one of paths, and protobufjs's own error (file and
 * line) for a file that does not parse.
 */
export function loadProtoFiles(files: unknown, key: string, keepCase = true): protobuf.Root {
  if (!Array.isArray(files) || files.length === 0 || !files.every((file) => typeof file === 'string' && file !== '')) {
    throw invalidOption(key, files, 'a non-empty list of local .proto file paths');
  }
  const root = new protobuf.Root().loadSync([...files], { keepCase });
  root.resolveAll();
  return root;
}

/**
 * Loads a serialized `google.protobuf.FileDescriptorSet` as {@link loadProtoFiles} loads files
 * (field names lowerCamelCase). Bytes that are no descriptor set fail naming `key`.
 */
export function loadDescriptorSet(bytes: Uint8Array, key: string): protobuf.Root {
  try {
    // protobufjs names a field by its json_name, else by its .proto name: descriptors without
    // json_name (protobufjs writes none) would keep snake_case where .proto files give camelCase.
    const set = FileDescriptorSet.decode(bytes) as unknown as { file?: { messageType?: DescribedMessage[] }[] };
    for (const file of set.file ?? []) for (const message of file.messageType ?? []) setJsonNames(message);
    const root = protobuf.Root.fromDescriptor(set as Parameters<typeof protobuf.Root.fromDescriptor>[0]);
    root.resolveAll();
    return root;
  } catch (error) {
    throw invalidOption(key, `<${bytes.length} bytes>`, `a serialized google.protobuf.FileDescriptorSet (${(error as Error).message})`);
  }
}

interface DescribedMessage {
  field?: { name?: string; jsonName?: string }[];
  nestedType?: DescribedMessage[];
}

function setJsonNames(message: DescribedMessage): void {
  for (const field of message.field ?? []) if (!field.jsonName && field.name) field.jsonName = protobuf.util.camelCase(field.name);
  for (const nested of message.nestedType ?? []) setJsonNames(nested);
}

/**
 * The rpc of `service` that shuttle method `method` maps to: the one of that name, or of that
 * name with its first letter in upper case. Undefined when the .proto has no such service or
 * rpc.
 */
export function findRpc(root: protobuf.Root, service: string, method: string): protobuf.Method | undefined {
  const declared = protoService(root, service);
  if (declared === undefined) return undefined;
  const capitalised = method.charAt(0).toUpperCase() + method.slice(1);
  const rpc = Object.hasOwn(declared.methods, method)
    ? declared.methods[method]
    : Object.hasOwn(declared.methods, capitalised)
      ? declared.methods[capitalised]
      : undefined;
  rpc?.resolve();
  return rpc;
}

/** The service named `service` (package-qualified) in `root`, if declared. */
export function protoService(root: protobuf.Root, service: string): protobuf.Service | undefined {
  let found: protobuf.ReflectionObject | null = null;
  try {
    found = root.lookup(service);
  } catch {
    // lookup throws on names protobufjs cannot parse; such a name is simply not declared.
  }
  return found instanceof protobuf.Service ? found : undefined;
}

/** Encodes and decodes one message type between plain objects and protobuf bytes. */
export interface MessageCodec {
  readonly type: protobuf.Type;
  /**
   * Checks `value` against the type; throws naming `label` (`svc.method request`) and the bad
   * field: INVALID_ARGUMENT for a request, INTERNAL for a response.
   */
  encode(value: unknown, label: string): Uint8Array;
  /** Decodes to a plain object with defaults filled in; throws on malformed bytes. */
  decode(bytes: Uint8Array): Record<string, unknown>;
}

/** A {@link MessageCodec} for `type`. */
export function messageCodec(type: protobuf.Type): MessageCodec {
  const name = type.fullName.slice(1);
  return {
    type,
    encode(value, label) {
      const message = value === undefined ? {} : value;
      if (message === null || typeof message !== 'object') {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `${label} must be an object for ${name}, got ${message === null ? 'null' : typeof message}`);
      }
      // Checked against the schema first (protobuf-check.ts): protobufjs's own verify lets
      // through values that would arrive changed, and refuses 64-bit integers as BigInt.
      let prepared: Record<string, unknown>;
      const response = label.endsWith('response');
      try {
        prepared = prepareMessage(type, message, response ? 'response' : 'request');
      } catch (error) {
        if (!(error instanceof MessageProblem)) throw error;
        // A request that does not fit is the caller's; a response, the provider's.
        const code = response ? RpcCode.INTERNAL : RpcCode.INVALID_ARGUMENT;
        throw new RpcError(code, `${label} does not fit ${name}: ${error.message}`, { details: { path: error.path } });
      }
      return type.encode(type.fromObject(prepared)).finish();
    },
    decode(bytes) {
      return type.toObject(type.decode(bytes), { longs: String, enums: Number, bytes: Uint8Array, defaults: true });
    },
  };
}

function resolveType(root: protobuf.Root, target: PayloadTarget): protobuf.Type {
  if (protoService(root, target.service) === undefined) {
    throw new RpcError(RpcCode.UNIMPLEMENTED, `no service ${target.service} in the loaded .proto files`);
  }
  const method = findRpc(root, target.service, target.method);
  if (method === undefined) {
    const capitalised = target.method.charAt(0).toUpperCase() + target.method.slice(1);
    throw new RpcError(RpcCode.UNIMPLEMENTED, `no rpc ${target.method} (or ${capitalised}) in service ${target.service} of the loaded .proto files`);
  }
  const type = target.kind === 'request' ? method.resolvedRequestType : method.resolvedResponseType;
  if (type === null) throw new RpcError(RpcCode.INTERNAL, `unresolved ${target.kind} type of ${target.service}.${method.name}`);
  return type;
}
