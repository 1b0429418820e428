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
 * Checks metadata and returns the bytes it takes on the wire (count byte included). `extraKey`
 * and `extraValue` are one more entry appended by the transport (the remaining timeout) without
 * copying `meta`. Throws INVALID_ARGUMENT naming the entry that does not fit.
 */
export function measureMeta(meta: Metadata | undefined, extraKey?: string, extraValue?: string): number {
  let size = 1;
  let count = 0;
  if (meta !== undefined) {
    for (const key in meta) {
      if (!Object.hasOwn(meta, key)) continue;
      size += measureEntry(key, meta[key]);
      count++;
    }
  }
  if (extraKey !== undefined) {
    size += measureEntry(extraKey, extraValue);
    count++;
  }
  if (count > MAX_META_ENTRIES) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata has ${count} entries, at most ${MAX_META_ENTRIES} allowed`);
  }
  return size;
}

function measureEntry(key: string, value: unknown): number {
  if (typeof value !== 'string') {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} must be a string, got ${typeof value}`);
  }
  const k = Buffer.byteLength(key);
  const v = Buffer.byteLength(value);
  if (k === 0 || k > 255) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata key ${JSON.stringify(key.slice(0, 40))} must be 1 to 255 bytes, is ${k}`);
  if (v > 0xffff) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} value is ${v} bytes, at most 65535 allowed`);
  return 3 + k + v;
}

/**
 * Writes metadata already checked by {@link measureMeta} (with the same arguments) into
 * `target` at `offset`; returns the offset after it. Strings are written in place, with no
 * intermediate buffers, because this runs once per call.
 */
export function writeMeta(target: Buffer, offset: number, meta: Metadata | undefined, extraKey?: string, extraValue?: string): number {
  const countAt = offset++;
  let count = 0;
  if (meta !== undefined) {
    for (const key in meta) {
      if (!Object.hasOwn(meta, key)) continue;
      offset = writeEntry(target, offset, key, meta[key]!);
      count++;
    }
  }
  if (extraKey !== undefined) {
    offset = writeEntry(target, offset, extraKey, extraValue!);
    count++;
  }
  target[countAt] = count;
  return offset;
}

function writeEntry(target: Buffer, offset: number, key: string, value: string): number {
  const k = target.write(key, offset + 1, 'utf8');
  target[offset] = k;
  offset += 1 + k;
  const v = target.write(value, offset + 2, 'utf8');
  target.writeUInt16BE(v, offset);
  return offset + 2 + v;
}

/** Encodes metadata into a new buffer; see {@link measureMeta} for the checks. */
export function encodeMeta(meta: Metadata | undefined, extraKey?: string, extraValue?: string): Buffer {
  const out = Buffer.allocUnsafe(measureMeta(meta, extraKey, extraValue));
  writeMeta(out, 0, meta, extraKey, extraValue);
  return out;
}

/** A decoded REQUEST head, where the payload starts, and how many metadata entries it had. */
export interface DecodedHead {
  readonly head: RequestHead;
  readonly payloadOffset: number;
  readonly entries: number;
}

/** Routes remembered per decoder; a connection rarely uses more than a handful. */
const MAX_CACHED_ROUTES = 256;
/**
 * Route bytes remembered per decoder. Each route kept costs about three times its bytes (its
 * key, a copy of its bytes, its four strings), and routes of up to 1 KiB come from any peer,
 * before any check: 256 of them cost 670 KB per connection, 600 MB on 900 connections. Routes
 * a consumer really uses are some tens of bytes, so this keeps hundreds of those.
 */
const MAX_CACHED_ROUTE_BYTES = 8 * 1024;
/** Metadata keys remembered per decoder (a consumer sends the same few keys on every call). */
const MAX_CACHED_KEYS = 32;
/**
 * Strings up to this many bytes are built in JavaScript when they are ASCII: cheaper than a
 * call into the buffer's native decoder, and V8 keeps a concatenation this short flat.
 */
const SHORT_STRING = 12;

interface Route {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
}

/** Bytes seen before and what they decoded to. */
interface Known<T> {
  readonly bytes: Buffer;
  readonly value: T;
}

/**
 * Decodes REQUEST heads for one connection. The route (service, version, group, method) and the
 * metadata keys of a connection's calls repeat, so their decoded strings are remembered by their
 * raw bytes: a repeated route or key costs a byte comparison, not a string, a UTF-8 check and
 * (for keys) V8's slow path for a new string used as a property name. Both caches are bounded.
 */
export class RequestHeadDecoder {
  readonly #routes = new Map<string, Known<Route>>();
  #routeBytes = 0;
  #lastRoute: Known<Route> | undefined;
  readonly #keys: Known<string>[] = [];
  readonly #reader = new HeadReader();

  /**
   * Decodes the head of a REQUEST body and says where the payload starts. Throws
   * INVALID_ARGUMENT when the head is truncated or not UTF-8; the connection stays up.
   */
  decode(body: Buffer): DecodedHead {
    const reader = this.#reader;
    reader.reset(body);
    try {
      return this.#decode(reader);
    } finally {
      // The reader must not hold the last request's frame (up to the frame limit) till the next.
      reader.reset(EMPTY);
    }
  }

  #decode(reader: HeadReader): DecodedHead {
    const route = this.#route(reader);
    const count = reader.u8('metadata count');
    // A null-prototype object: keys like "__proto__" from the wire stay plain data.
    const meta: Metadata = Object.create(null) as Metadata;
    for (let i = 0; i < count; i++) {
      const key = this.#key(reader);
      meta[key] = reader.string16('metadata', key);
    }
    return {
      head: { service: route.service, version: route.version, group: route.group, method: route.method, meta },
      payloadOffset: reader.offset,
      entries: count,
    };
  }

  #route(reader: HeadReader): Route {
    const body = reader.body;
    const routeEnd = reader.skipRoute();
    const last = this.#lastRoute;
    if (last !== undefined && routeEnd === last.bytes.length && sameBytes(body, 0, last.bytes)) {
      reader.offset = routeEnd;
      return last.value;
    }
    if (routeEnd < 0) {
      // Too short for a route: reading it throws the "truncated" error naming the part.
      return readRoute(reader);
    }
    const key = body.toString('latin1', 0, routeEnd);
    let known = this.#routes.get(key);
    if (known === undefined) {
      const route = readRoute(reader);
      known = { bytes: Buffer.from(body.subarray(0, routeEnd)), value: route };
      if (this.#routes.size < MAX_CACHED_ROUTES && this.#routeBytes + routeEnd <= MAX_CACHED_ROUTE_BYTES) {
        this.#routes.set(key, known);
        this.#routeBytes += routeEnd;
      }
    } else {
      reader.offset = routeEnd;
    }
    this.#lastRoute = known;
    return known.value;
  }

  #key(reader: HeadReader): string {
    const length = reader.u8('metadata key');
    const start = reader.offset;
    if (start + length <= reader.body.length) {
      for (const known of this.#keys) {
        if (known.bytes.length === length && sameBytes(reader.body, start, known.bytes)) {
          reader.offset = start + length;
          return known.value;
        }
      }
    }
    const key = reader.string(length, 'metadata key');
    if (this.#keys.length < MAX_CACHED_KEYS) {
      // A property name V8 has already interned, so setting it on the metadata object is fast.
      const interned = Object.keys({ [key]: 0 })[0]!;
      this.#keys.push({ bytes: Buffer.from(reader.body.subarray(start, start + length)), value: interned });
      return interned;
    }
    return key;
  }
}

/** Decodes one REQUEST head without a cache; see {@link RequestHeadDecoder.decode}. */
export function decodeRequestHead(body: Buffer): DecodedHead {
  return new RequestHeadDecoder().decode(body);
}

/** Reads the four route strings, checking each. */
function readRoute(reader: HeadReader): Route {
  return { service: reader.string8('service'), version: reader.string8('version'), group: reader.string8('group'), method: reader.string8('method') };
}

/** Whether `body` holds exactly `bytes` from `offset` on (the caller checked the length fits). */
function sameBytes(body: Buffer, offset: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (body[offset + i] !== bytes[i]) return false;
  return true;
}

/** A cursor over one head; reused by its decoder, which decodes one head at a time. */
const EMPTY = Buffer.alloc(0);

class HeadReader {
  body: Buffer = EMPTY;
  offset = 0;

  reset(body: Buffer): void {
    this.body = body;
    this.offset = 0;
  }

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
    return this.string(this.u8(what), what);
  }

  /** A u16-length string; `key`, when given, is named in errors (built only when one is thrown). */
  string16(what: string, key?: string): string {
    if (this.offset + 2 > this.body.length) throw truncated(describe(what, key));
    const length = this.body.readUInt16BE(this.offset);
    this.offset += 2;
    return this.string(length, what, key);
  }

  string(length: number, what: string, key?: string): string {
    const body = this.body;
    const start = this.offset;
    const end = start + length;
    if (end > body.length) throw truncated(describe(what, key));
    this.offset = end;
    if (length <= SHORT_STRING) {
      let text = '';
      let i = start;
      for (; i < end; i++) {
        const byte = body[i]!;
        if (byte >= 0x80) break;
        text += String.fromCharCode(byte);
      }
      if (i === end) return text;
    }
    if (!isUtf8(body.subarray(start, end))) {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `request ${describe(what, key)} is not valid UTF-8`);
    }
    return body.toString('utf8', start, end);
  }
}

function describe(what: string, key: string | undefined): string {
  return key === undefined ? what : `${what} ${JSON.stringify(key)}`;
}

function truncated(what: string): RpcError {
  return new RpcError(RpcCode.INVALID_ARGUMENT, `request head truncated while reading ${what}`);
}
