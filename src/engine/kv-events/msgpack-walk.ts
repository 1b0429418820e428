/*
 * Finding where a msgpack value ends without decoding it: so one event of a KV-event message can
 * be decoded at a time, and a message of 4 MiB is never turned into objects all at once. Only
 * msgpack's own types are walked; an extension type (msgpackr's records and structured-clone
 * references use them; vLLM's events never do) is refused.
 */

/** The length of the array that starts at `pos`, and where its first item starts; undefined when no array starts there. */
export function arrayHeader(bytes: Uint8Array, pos: number): { length: number; first: number } | undefined {
  const byte = bytes[pos];
  if (byte === undefined) return undefined;
  if (byte >= 0x90 && byte <= 0x9f) return { length: byte & 0x0f, first: pos + 1 };
  if (byte === 0xdc && pos + 3 <= bytes.length) return { length: (bytes[pos + 1]! << 8) | bytes[pos + 2]!, first: pos + 3 };
  if (byte === 0xdd && pos + 5 <= bytes.length) return { length: readU32(bytes, pos + 1), first: pos + 5 };
  return undefined;
}

/** What kind of value starts at `pos`, for errors: `an object`, `a number`… */
export function kindAt(bytes: Uint8Array, pos: number): string {
  const byte = bytes[pos];
  if (byte === undefined) return 'nothing';
  if (byte <= 0x7f || byte >= 0xe0 || (byte >= 0xca && byte <= 0xd3)) return 'a number';
  if ((byte >= 0x80 && byte <= 0x8f) || byte === 0xde || byte === 0xdf) return 'an object';
  if ((byte >= 0x90 && byte <= 0x9f) || byte === 0xdc || byte === 0xdd) return `an array of ${arrayHeader(bytes, pos)?.length ?? '?'}`;
  if ((byte >= 0xa0 && byte <= 0xbf) || (byte >= 0xd9 && byte <= 0xdb)) return 'a string';
  if (byte === 0xc0) return 'null';
  if (byte === 0xc2 || byte === 0xc3) return 'a boolean';
  if (byte >= 0xc4 && byte <= 0xc6) return 'bytes';
  return 'an extension type';
}

/**
 * Where the value that starts at `pos` ends (the position after it); -1 when it does not end by
 * `limit` (the caller's cap on its size). Throws when it is not msgpack or holds an extension type.
 * Iterative, so nesting depth costs no stack; each step moves on at least one byte.
 */
export function skipValue(bytes: Uint8Array, pos: number, limit: number): number {
  const end = Math.min(limit, bytes.length);
  let values = 1;
  while (values > 0) {
    if (pos >= end) {
      if (pos >= bytes.length) throw new Error('the payload ends inside a value');
      return -1;
    }
    const byte = bytes[pos]!;
    values--;
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) pos += 1;
    else if (byte <= 0x8f) {
      values += 2 * (byte & 0x0f);
      pos += 1;
    } else if (byte <= 0x9f) {
      values += byte & 0x0f;
      pos += 1;
    } else if (byte <= 0xbf) pos += 1 + (byte & 0x1f);
    else {
      switch (byte) {
        case 0xc4:
        case 0xd9:
          pos += 2 + (bytes[pos + 1] ?? 0);
          break;
        case 0xc5:
        case 0xda:
          pos += 3 + (((bytes[pos + 1] ?? 0) << 8) | (bytes[pos + 2] ?? 0));
          break;
        case 0xc6:
        case 0xdb:
          pos += 5 + (pos + 5 <= bytes.length ? readU32(bytes, pos + 1) : 0);
          break;
        case 0xcc:
        case 0xd0:
          pos += 2;
          break;
        case 0xcd:
        case 0xd1:
          pos += 3;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          pos += 5;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          pos += 9;
          break;
        case 0xdc:
          values += ((bytes[pos + 1] ?? 0) << 8) | (bytes[pos + 2] ?? 0);
          pos += 3;
          break;
        case 0xdd:
          values += pos + 5 <= bytes.length ? readU32(bytes, pos + 1) : 0;
          pos += 5;
          break;
        case 0xde:
          values += 2 * (((bytes[pos + 1] ?? 0) << 8) | (bytes[pos + 2] ?? 0));
          pos += 3;
          break;
        case 0xdf:
          values += 2 * (pos + 5 <= bytes.length ? readU32(bytes, pos + 1) : 0);
          pos += 5;
          break;
        default:
          // 0xc1 (never used), and the extension types 0xc7-0xc9, 0xd4-0xd8.
          throw new Error(
            byte === 0xc1
              ? `byte 0xc1 at ${pos} is no msgpack type`
              : `an extension type at byte ${pos} (msgpackr's records or structured clone references), which is refused`,
          );
      }
    }
  }
  if (pos > bytes.length) throw new Error('the payload ends inside a value');
  return pos > end ? -1 : pos;
}

function readU32(bytes: Uint8Array, pos: number): number {
  return ((bytes[pos]! << 24) >>> 0) + (bytes[pos + 1]! << 16) + (bytes[pos + 2]! << 8) + bytes[pos + 3]!;
}
