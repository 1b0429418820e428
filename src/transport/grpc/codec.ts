import protobuf from 'protobufjs';
import { RecentMap } from '../../common/recent-map.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import { findRpc, messageCodec, protoService, type MessageCodec } from '../../serializer/protobuf.js';
import { decodeError, type PayloadTarget, type Serializer, type SerializerSet } from '../../serializer/serializer.js';
import { DEFAULT_DECODE_LIMITS } from '../../serializer/decode-limits.js';
import { checkJson } from '../../serializer/json-guard.js';

/*
 * How a shuttle method becomes a gRPC method (docs/PROTOCOL.md, "gRPC transport"):
 *
 * - A service declared in the transport's .proto files is served exactly as the .proto says:
 *   path `/<package>.<Service>/<Rpc>`, bodies are the rpc's protobuf messages, so any gRPC
 *   client built from the .proto alone can call it. The shuttle method `generate` maps to the
 *   rpc `generate` or `Generate`.
 * - Any other service is still reachable, at `/<service>/<method>`, with every body wrapped in
 *   the generic envelope `shuttle.v1.Envelope { bytes body = 1; string serializer = 2; }`: the
 *   value encoded by a shuttle serializer (msgpack when `serializer` is empty, or json), and
 *   the answer in the serializer of the request.
 */

/** The generic envelope, defined here rather than loaded so that no file lookup can fail at run time. */
const envelopeType = new protobuf.Type('Envelope').add(new protobuf.Field('body', 1, 'bytes')).add(new protobuf.Field('serializer', 2, 'string'));
new protobuf.Root().define('shuttle.v1').add(envelopeType);

/** The envelope's message type (for tests and docs: `shuttle.v1.Envelope`). */
export const ENVELOPE_TYPE: protobuf.Type = envelopeType;

/** The serializer a generic envelope uses when it names none. */
const DEFAULT_ENVELOPE_SERIALIZER = 'msgpack';

/** One shuttle method as a gRPC method. */
export interface GrpcRoute {
  /** The HTTP/2 path, `/package.Service/Method`. */
  readonly path: string;
  readonly service: string;
  /** The shuttle (JavaScript) method name. */
  readonly method: string;
  /** Whether the .proto declares it server-streaming; undefined for envelope routes. */
  readonly protoStream: boolean | undefined;
  /** Encodes a request (consumer side); `serializer` is the call's, used by envelope routes. */
  encodeRequest(value: unknown, serializer: Serializer): Buffer;
  /**
   * Decodes a request (provider side), returning the value and the serializer to answer in.
   * Throws an RpcError: INVALID_ARGUMENT for bytes that do not decode, UNIMPLEMENTED for an
   * envelope naming a serializer this provider does not have.
   */
  decodeRequest(bytes: Buffer, serializers: SerializerSet): { value: unknown; serializer: Serializer | undefined };
  encodeResponse(value: unknown, serializer: Serializer | undefined): Buffer;
  /** Decodes a response (consumer side); throws INTERNAL for bytes that do not decode. */
  decodeResponse(bytes: Buffer, serializer: Serializer): unknown;
  /**
   * A stream's trailer (the generator's return value) for the `shuttle-trailer-bin` trailing
   * header: in the request's serializer on envelope routes, UTF-8 JSON on protobuf routes
   * (the .proto has no message for it).
   */
  encodeTrailer(value: unknown, serializer: Serializer | undefined): Buffer;
  decodeTrailer(bytes: Buffer, serializer: Serializer): unknown;
}

/** Routes kept per generation (see RecentMap): far more than the methods of every service served or called. */
const MAX_CACHED_ROUTES = 1024;

/** Routes for one transport: protobuf ones from its .proto files, envelope ones for the rest. */
export class GrpcRoutes {
  readonly #root: protobuf.Root | undefined;
  /**
   * Routes by service and method. A consumer's calls name any method (the provider answers
   * UNIMPLEMENTED for one it does not serve), so only the routes in use are kept.
   */
  readonly #cache = new RecentMap<string, GrpcRoute>(MAX_CACHED_ROUTES);

  constructor(root: protobuf.Root | undefined) {
    this.#root = root;
  }

  /** Whether the .proto files declare `service` (then only its declared rpcs are served). */
  declares(service: string): boolean {
    return this.#root !== undefined && protoService(this.#root, service) !== undefined;
  }

  /**
   * The route of `service.method`. For a service the .proto declares, undefined when it has
   * no matching rpc.
   */
  route(service: string, method: string): GrpcRoute | undefined {
    const key = `${service}\u0000${method}`;
    let route = this.#cache.get(key);
    if (route === undefined) {
      route = this.#build(service, method);
      if (route !== undefined) this.#cache.set(key, route);
    }
    return route;
  }

  #build(service: string, method: string): GrpcRoute | undefined {
    if (this.#root === undefined || !this.declares(service)) return envelopeRoute(service, method);
    const rpc = findRpc(this.#root, service, method);
    if (rpc === undefined) return undefined;
    if (rpc.requestStream === true) {
      throw new TypeError(`shuttle-rpc: rpc ${service}.${rpc.name} is client-streaming in the .proto; shuttle serves unary and server-streaming rpcs only`);
    }
    return protobufRoute(service, method, rpc);
  }
}

function protobufRoute(service: string, method: string, rpc: protobuf.Method): GrpcRoute {
  const request = messageCodec(rpc.resolvedRequestType!);
  const response = messageCodec(rpc.resolvedResponseType!);
  const target = (kind: PayloadTarget['kind']): PayloadTarget => ({ service, method, kind });
  return {
    path: `/${service}/${rpc.name}`,
    service,
    method,
    protoStream: rpc.responseStream === true,
    encodeRequest: (value) => asBuffer(request.encode(value, `${service}.${method} request`)),
    decodeRequest: (bytes) => ({ value: decodeWith(request, bytes, target('request')), serializer: undefined }),
    encodeResponse: (value) => asBuffer(response.encode(value, `${service}.${method} response`)),
    decodeResponse: (bytes) => decodeWith(response, bytes, target('response')),
    encodeTrailer: (value) => Buffer.from(JSON.stringify(value) ?? 'null', 'utf8'),
    decodeTrailer(bytes) {
      try {
        // The peer's JSON, priced before it is parsed as any payload is (json-guard.ts).
        const text = bytes.toString('utf8');
        checkJson(text, bytes.length, DEFAULT_DECODE_LIMITS);
        return JSON.parse(text);
      } catch (error) {
        throw new RpcError(RpcCode.INTERNAL, `cannot decode the stream trailer of ${service}.${method} as JSON: ${(error as Error).message}`, { cause: error });
      }
    },
  };
}

function envelopeRoute(service: string, method: string): GrpcRoute {
  const request: PayloadTarget = { service, method, kind: 'request' };
  const response: PayloadTarget = { service, method, kind: 'response' };
  return {
    path: `/${service}/${method}`,
    service,
    method,
    protoStream: undefined,
    encodeRequest: (value, serializer) => wrap(serializer, serializer.encode(value, request)),
    decodeRequest(bytes, serializers) {
      const envelope = openEnvelope(bytes, request);
      const name = envelope.serializer || DEFAULT_ENVELOPE_SERIALIZER;
      const serializer = serializers.names().includes(name) ? serializers.byName(name) : undefined;
      if (serializer === undefined) {
        throw new RpcError(
          RpcCode.UNIMPLEMENTED,
          `${service}.${method}: the envelope names serializer ${JSON.stringify(name.slice(0, 40))}; this provider speaks ${serializers.names().join(', ')}`,
        );
      }
      try {
        return { value: serializer.decode(envelope.body, request), serializer };
      } catch (error) {
        throw decodeError(request, serializer, error);
      }
    },
    encodeResponse: (value, serializer) => wrap(serializer!, serializer!.encode(value, response)),
    decodeResponse: (bytes, serializer) => unwrap(bytes, serializer, response),
    encodeTrailer: (value, serializer) => wrap(serializer!, serializer!.encode(value, response)),
    decodeTrailer: (bytes, serializer) => unwrap(bytes, serializer, response),
  };
}

function unwrap(bytes: Buffer, serializer: Serializer, target: PayloadTarget): unknown {
  const body = openEnvelope(bytes, target).body;
  try {
    return serializer.decode(body, target);
  } catch (error) {
    throw decodeError(target, serializer, error);
  }
}

/*
 * The envelope is on the path of every message (for a stream, every token), so it is written
 * by hand — a tag, a varint length, the body; then the serializer name unless it is msgpack —
 * and read by hand when it has exactly that shape. Anything else a client in another
 * language may send (fields in another order, unknown fields) is read by protobufjs's decoder
 * for the same message. test/unit/transport/grpc.test.ts checks the bytes against the
 * message documented in docs/PROTOCOL.md.
 */

/** Field 1 (`body`) and field 2 (`serializer`), both length-delimited (wire type 2). */
const ENVELOPE_BODY_TAG = (1 << 3) | 2;
const ENVELOPE_SERIALIZER_TAG = (2 << 3) | 2;

/** The envelope carrying `body` (copied: a serializer may reuse its buffer). */
function wrap(serializer: Serializer, body: Uint8Array): Buffer {
  const name = serializer.name === DEFAULT_ENVELOPE_SERIALIZER ? '' : serializer.name;
  const nameBytes = name === '' ? 0 : Buffer.byteLength(name, 'utf8');
  const size = 1 + varintSize(body.length) + body.length + (nameBytes === 0 ? 0 : 1 + varintSize(nameBytes) + nameBytes);
  const out = Buffer.allocUnsafe(size);
  out[0] = ENVELOPE_BODY_TAG;
  let offset = writeVarint(out, 1, body.length);
  out.set(body, offset);
  offset += body.length;
  if (nameBytes > 0) {
    out[offset] = ENVELOPE_SERIALIZER_TAG;
    offset = writeVarint(out, offset + 1, nameBytes);
    out.write(name, offset, 'utf8');
  }
  return out;
}

function openEnvelope(bytes: Uint8Array, target: PayloadTarget): { body: Uint8Array; serializer: string } {
  // The shape wrap() writes for msgpack: the body field and nothing else.
  if (bytes.length >= 2 && bytes[0] === ENVELOPE_BODY_TAG) {
    let length = 0;
    let offset = 1;
    for (let shift = 0; offset < bytes.length && shift < 35; shift += 7) {
      const byte = bytes[offset++]!;
      length += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) {
        if (offset + length === bytes.length) return { body: bytes.subarray(offset), serializer: '' };
        break;
      }
    }
  }
  try {
    return envelopeType.decode(bytes) as unknown as { body: Uint8Array; serializer: string };
  } catch (error) {
    const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
    throw new RpcError(code, `cannot decode ${target.kind} of ${target.service}.${target.method} as shuttle.v1.Envelope: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}

function decodeWith(codec: MessageCodec, bytes: Uint8Array, target: PayloadTarget): Record<string, unknown> {
  try {
    return codec.decode(bytes);
  } catch (error) {
    const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
    throw new RpcError(
      code,
      `cannot decode ${target.kind} of ${target.service}.${target.method} as ${codec.type.fullName.slice(1)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
