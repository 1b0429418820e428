import grpc from '@grpc/grpc-js';
import { RpcCode, RpcError, isRpcCode } from '../../errors/errors.js';
import type { Metadata } from '../../call/invocation.js';
import { readErrorBody } from '../error-body.js';

/*
 * What shuttle puts in gRPC headers and trailers (docs/PROTOCOL.md, "gRPC transport"). RpcCode
 * uses gRPC's numbering, so a status code crosses unchanged in both directions; the message is
 * grpc-message; what gRPC has no place for rides in shuttle-* headers that other clients ignore.
 */

/** Request header naming the service version to call (absent: the only one exported). */
export const VERSION_HEADER = 'shuttle-service-version';
/** Request header naming the service group to call (absent: the default group ''). */
export const GROUP_HEADER = 'shuttle-service-group';
/**
 * Request header a shuttle consumer sends: `unary` or `stream`, how it will read the answer. gRPC
 * carries both kinds alike on the wire, so without it a unary call to a streaming method (made
 * through a proxy that cannot know the method's kind) was served as a stream nobody read.
 */
export const KIND_HEADER = 'shuttle-call-kind';
/** Trailer of a failed call: UTF-8 JSON `{ details?, retryAfterMs? }` of the RpcError. */
export const ERROR_TRAILER = 'shuttle-error-bin';
/** Trailer of a stream that ended normally with a return value. */
export const RESULT_TRAILER = 'shuttle-trailer-bin';
/** Trailer of every answer: the provider's load report (UTF-8 JSON of a load snapshot). */
export const LOAD_TRAILER = 'shuttle-load';

/** Headers HTTP/2 and gRPC use themselves; they are not call metadata. */
const TRANSPORT_HEADERS = new Set(['user-agent', 'content-type', 'te', 'accept-encoding', VERSION_HEADER, GROUP_HEADER, KIND_HEADER, LOAD_TRAILER]);

/**
 * gRPC request metadata for a call. Keys are lower-cased by gRPC; a key or value gRPC cannot
 * carry (say `Bad Key`, a newline, or `__proto__`) fails the call INVALID_ARGUMENT naming it.
 */
export function toGrpcMetadata(meta: Metadata, version: string, group: string, kind?: 'unary' | 'stream'): grpc.Metadata {
  const metadata = new grpc.Metadata();
  try {
    for (const key in meta) {
      if (!Object.hasOwn(meta, key)) continue;
      const value = meta[key];
      if (typeof value !== 'string') throw new TypeError(`metadata ${JSON.stringify(key)} must be a string, got ${typeof value}`);
      // grpc-js turns metadata into HTTP/2 headers through a plain object, where this key is lost.
      if (key === '__proto__') throw new TypeError('metadata "__proto__" is a key @grpc/grpc-js drops (use another name)');
      if (key.endsWith('-bin')) metadata.set(key, Buffer.from(value, 'utf8'));
      else metadata.set(key, value);
    }
  } catch (error) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata cannot be sent over grpc: ${(error as Error).message}`, { cause: error });
  }
  if (version !== '') metadata.set(VERSION_HEADER, version);
  if (group !== '') metadata.set(GROUP_HEADER, group);
  if (kind !== undefined) metadata.set(KIND_HEADER, kind);
  return metadata;
}

/**
 * Call metadata from gRPC request headers: one string per key (the first value; binary
 * values as UTF-8), without gRPC's and HTTP's own headers.
 */
export function fromGrpcMetadata(metadata: grpc.Metadata): Metadata {
  // A null-prototype object, as the tcp transport gives: a handler looking up any key (say
  // `constructor`) finds only what the caller sent.
  const meta: Metadata = Object.create(null) as Metadata;
  const map = metadata.getMap();
  for (const key of Object.keys(map)) {
    if (key.startsWith('grpc-') || key.startsWith(':') || TRANSPORT_HEADERS.has(key)) continue;
    const value = map[key]!;
    meta[key] = typeof value === 'string' ? value : value.toString('utf8');
  }
  // getMap builds a plain object, where a `__proto__` key is lost: read that one by name.
  const proto = metadata.get('__proto__')[0];
  if (proto !== undefined) {
    const value = typeof proto === 'string' ? proto : proto.toString('utf8');
    Object.defineProperty(meta, '__proto__', { value, enumerable: true, writable: true, configurable: true });
  }
  return meta;
}

/** The status grpc-js sends for `error`: its code, its message, and the rest in a trailer. */
export function errorToStatus(error: RpcError): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  const { details, retryAfterMs } = error.toWire();
  if (details !== undefined || retryAfterMs !== undefined) {
    let json: string;
    try {
      json = JSON.stringify({ details, retryAfterMs });
    } catch {
      // details JSON cannot carry (a cycle, a BigInt) must not lose the error itself.
      json = JSON.stringify({ retryAfterMs });
    }
    metadata.set(ERROR_TRAILER, Buffer.from(json, 'utf8'));
  }
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata };
}

/**
 * The RpcError for a failed gRPC call, from any gRPC server: the status code as is (an
 * out-of-range one becomes UNKNOWN), grpc-message as the message, and shuttle's details and
 * retry hint when the server is a shuttle provider.
 */
export function statusToError(status: Pick<grpc.StatusObject, 'code' | 'details'> & { metadata?: grpc.Metadata | null }): RpcError {
  const code = isRpcCode(status.code) && status.code !== RpcCode.OK ? status.code : RpcCode.UNKNOWN;
  const extra = status.metadata?.get(ERROR_TRAILER)[0];
  // The trailer is the peer's word, read through the same guard as a tcp error body; one that
  // is malformed or too large still leaves the code and message, which are what matter.
  const body = Buffer.isBuffer(extra) ? readErrorBody(extra) : undefined;
  const fields = body !== undefined && 'fields' in body ? body.fields : {};
  return RpcError.fromWire({ ...fields, code, message: status.details || 'no message' });
}

/**
 * What grpc-js says, with no status from the peer, when a call's HTTP/2 connection or stream is
 * lost after its request went out: the connection closed (keepalive pings unanswered, the
 * provider's process killed, the provider closing it), the stream reset, the socket reset or
 * timed out, or the stream ended without a status (grpc-js 1.x, `subchannel-call.ts`).
 */
const LOST_IN_FLIGHT = /^(?:Connection dropped$|Received RST_STREAM with code \d+|No status information received$)|\b(?:ECONNRESET|ETIMEDOUT|EPIPE)\b/;

/**
 * Whether a failed call's status says its connection was lost while the request was in flight:
 * the provider may have run it, as for a tcp connection lost with calls on it. A status the
 * provider sent (any other text, or a code other than UNAVAILABLE, INTERNAL or UNKNOWN) says what
 * the provider did, and a refused stream (`Stream refused by server`) was never run.
 */
export function lostInFlightStatus(status: Pick<grpc.StatusObject, 'code' | 'details'>): boolean {
  const code = status.code as number;
  if (code !== RpcCode.UNAVAILABLE && code !== RpcCode.INTERNAL && code !== RpcCode.UNKNOWN) return false;
  return LOST_IN_FLIGHT.test(status.details ?? '');
}
