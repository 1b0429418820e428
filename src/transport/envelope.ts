import { RpcCode, RpcError } from '../errors/errors.js';

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

/** Call metadata: string keys to string values (deadline, trace context, token, routing hints). */
export type Metadata = Record<string, string>;

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

/** Encodes metadata entries; throws INVALID_ARGUMENT naming the entry that does not fit. */
export function encodeMeta(meta: Metadata | undefined): Buffer {
  const entries = meta === undefined ? [] : Object.entries(meta);
  if (entries.length > MAX_META_ENTRIES) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata has ${entries.length} entries, at most ${MAX_META_ENTRIES} allowed`);
  }
  const encoded: Buffer[] = [];
  let size = 1;
  for (const [key, value] of entries) {
    if (typeof value !== 'string') {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} must be a string, got ${typeof value}`);
    }
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    if (k.length === 0 || k.length > 255) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata key ${JSON.stringify(key)} must be 1 to 255 bytes`);
    if (v.length > 0xffff) throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata ${JSON.stringify(key)} value is ${v.length} bytes, at most 65535 allowed`);
    encoded.push(k, v);
    size += 3 + k.length + v.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = entries.length;
  let offset = 1;
  for (let i = 0; i < encoded.length; i += 2) {
    const k = encoded[i]!;
    const v = encoded[i + 1]!;
    out[offset++] = k.length;
    offset += k.copy(out, offset);
    out.writeUInt16BE(v.length, offset);
    offset += 2;
    offset += v.copy(out, offset);
  }
  return out;
}

/**
 * Decodes the head of a REQUEST body and says where the payload starts. Throws
 * INVALID_ARGUMENT when the head is truncated or not UTF-8; the connection stays up.
 */
export function decodeRequestHead(body: Buffer): { head: RequestHead; payloadOffset: number } {
  const reader = new HeadReader(body);
  const service = reader.string8('service');
  const version = reader.string8('version');
  const group = reader.string8('group');
  const method = reader.string8('method');
  const count = reader.u8('metadata count');
  // A null-prototype object: keys like "__proto__" from the wire stay plain data.
  const meta: Metadata = Object.create(null) as Metadata;
  for (let i = 0; i < count; i++) {
    const key = reader.string8('metadata key');
    meta[key] = reader.string16(`metadata ${JSON.stringify(key)}`);
  }
  return { head: { service, version, group, method, meta }, payloadOffset: reader.offset };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class HeadReader {
  offset = 0;
  constructor(private readonly body: Buffer) {}

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
    if (this.offset + length > this.body.length) throw truncated(what);
    const bytes = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    try {
      return utf8.decode(bytes);
    } catch {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `request ${what} is not valid UTF-8`);
    }
  }
}

function truncated(what: string): RpcError {
  return new RpcError(RpcCode.INVALID_ARGUMENT, `request head truncated while reading ${what}`);
}
