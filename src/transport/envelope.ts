import { isUtf8 } from 'node:buffer';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { Metadata } from '../call/invocation.js';

/*
 * The REQUEST body: a routing head in a fixed, serializer-independent layout, then the request
 * payload in the frame's serializer. Keeping the head outside the payload lets a provider reject
 * an unknown service or method, or check a token, before it decodes a single argument byte.
 *
 *   u8  service length, service (UTF-8)
 *   u8  version length, version
 *   u8  group length,   group
 *   u8  method length,  method
 *   u8  meta entry count, then per entry: u8 key length, key, u16 value length, value
 *   ... payload (the rest of the body)
 */

/** The routing part of a request. */
export interface RequestHead {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
  readonly meta: Metadata;
}

const MAX_META_ENTRIES = 255;

/**
 * Encodes the fixed route (service, version, group, method) once; proxies cache the result per
 * method so the hot path only appends metadata and payload.
 */
export function encodeRoute(service: string, version: string, group: string, method: string): Buffer {
  const parts = [service, version, group, method].map((part) => Buffer.from(part, 'utf8'));
  const route = Buffer.allocUnsafe(parts.reduce((sum, part) => sum + 1 + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    if (part.length > 255) throw new RpcError(RpcCode.INVALID_ARGUMENT, `name longer than 255 bytes: ${part.toString('utf8', 0, 40)}...`);
    route[offset++] = part.length;
    offset += part.copy(route, offset);
  }
  return route;
}

/**
 * Checks metadata and returns the bytes it takes on the wire (count byte included). `extra` is
 * one more entry appended by the transport (the remaining timeout) without copying `meta`.
 * Throws INVALID_ARGUMENT naming the entry that does not fit.
 */
export function measureMeta(meta: Metadata | undefined, extra?: readonly [string, string]): number {
  let size = 1;
  let count = 0;
  const add = (key: string, value: unknown): void => {
    if (typeof value !== 'string') {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} must be a string, got ${typeof value}`);
    }
    const k = Buffer.byteLength(key);
    const v = Buffer.byteLength(value);
    if (k === 0 || k > 255) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata key ${JSON.stringify(key)} must be 1 to 255 bytes`);
    if (v > 0xffff) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} value is ${v} bytes, at most 65535 allowed`);
    size += 3 + k + v;
    count++;
  };
  if (meta !== undefined) for (const key in meta) if (Object.hasOwn(meta, key)) add(key, meta[key]);
  if (extra !== undefined) add(extra[0], extra[1]);
  if (count > MAX_META_ENTRIES) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata has ${count} entries, at most ${MAX_META_ENTRIES} allowed`);
  }
  return size;
}

/**
 * Writes metadata already checked by {@link measureMeta} (with the same arguments) into
 * `target` at `offset`; returns the offset after it. Strings are written in place, with no
 * intermediate buffers, because this runs once per call.
 */
export function writeMeta(target: Buffer, offset: number, meta: Metadata | undefined, extra?: readonly [string, string]): number {
  const countAt = offset++;
  let count = 0;
  const put = (key: string, value: string): void => {
    const k = target.write(key, offset + 1, 'utf8');
    target[offset] = k;
    offset += 1 + k;
    const v = target.write(value, offset + 2, 'utf8');
    target.writeUInt16BE(v, offset);
    offset += 2 + v;
    count++;
  };
  if (meta !== undefined) for (const key in meta) if (Object.hasOwn(meta, key)) put(key, meta[key]!);
  if (extra !== undefined) put(extra[0], extra[1]);
  target[countAt] = count;
  return offset;
}

/** Encodes metadata into a new buffer; see {@link measureMeta} for the checks. */
export function encodeMeta(meta: Metadata | undefined, extra?: readonly [string, string]): Buffer {
  const out = Buffer.allocUnsafe(measureMeta(meta, extra));
  writeMeta(out, 0, meta, extra);
  return out;
}

/** Routes remembered per decoder; a connection rarely uses more than a handful. */
const MAX_CACHED_ROUTES = 256;

interface Route {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
}

/**
 * Decodes REQUEST heads for one connection. The route (service, version, group, method) of
 * a connection's calls repeats, so its decoded strings are cached by their raw bytes and the
 * UTF-8 check runs once per distinct route rather than once per call.
 */
export class RequestHeadDecoder {
  readonly #routes = new Map<string, Route>();

  /**
   * Decodes the head of a REQUEST body and says where the payload starts. Throws
   * INVALID_ARGUMENT when the head is truncated or not UTF-8; the connection stays up.
   */
  decode(body: Buffer): { head: RequestHead; payloadOffset: number } {
    const reader = new HeadReader(body);
    const routeEnd = reader.skipRoute();
    const key = routeEnd < 0 ? undefined : body.toString('latin1', 0, routeEnd);
    let route = key === undefined ? undefined : this.#routes.get(key);
    if (route === undefined) {
      reader.offset = 0;
      route = { service: reader.string8('service'), version: reader.string8('version'), group: reader.string8('group'), method: reader.string8('method') };
      if (key !== undefined && this.#routes.size < MAX_CACHED_ROUTES) this.#routes.set(key, route);
    } else {
      reader.offset = routeEnd;
    }
    const count = reader.u8('metadata count');
    // A null-prototype object: keys like "__proto__" from the wire stay plain data.
    const meta: Metadata = Object.create(null) as Metadata;
    for (let i = 0; i < count; i++) {
      const key = reader.string8('metadata key');
      meta[key] = reader.string16(`metadata ${JSON.stringify(key)}`);
    }
    return { head: { service: route.service, version: route.version, group: route.group, method: route.method, meta }, payloadOffset: reader.offset };
  }
}

/** Decodes one REQUEST head without a cache; see {@link RequestHeadDecoder.decode}. */
export function decodeRequestHead(body: Buffer): { head: RequestHead; payloadOffset: number } {
  return new RequestHeadDecoder().decode(body);
}

class HeadReader {
  offset = 0;
  constructor(private readonly body: Buffer) {}

  /** The end offset of the four route strings, or -1 when the body is too short for them. */
  skipRoute(): number {
    let offset = 0;
    for (let i = 0; i < 4; i++) {
      if (offset >= this.body.length) return -1;
      offset += 1 + this.body[offset]!;
    }
    return offset <= this.body.length ? offset : -1;
  }

  u8(what: string): number {
    if (this.offset + 1 > this.body.length) throw truncated(what);
    return this.body[this.offset++]!;
  }

  string8(what: string): string {
    return this.#string(this.u8(what), what);
  }

  string16(what: string): string {
    if (this.offset + 2 > this.body.length) throw truncated(what);
    const length = this.body.readUInt16BE(this.offset);
    this.offset += 2;
    return this.#string(length, what);
  }

  #string(length: number, what: string): string {
    const start = this.offset;
    const end = start + length;
    if (end > this.body.length) throw truncated(what);
    this.offset = end;
    if (!isUtf8(this.body.subarray(start, end))) {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `request ${what} is not valid UTF-8`);
    }
    return this.body.toString('utf8', start, end);
  }
}

function truncated(what: string): RpcError {
  return new RpcError(RpcCode.INVALID_ARGUMENT, `request head truncated while reading ${what}`);
}
