import { RpcCode, RpcError } from '../errors/errors.js';
import {
  COST_ARRAY,
  COST_BINARY,
  COST_DOUBLE,
  COST_OBJECT,
  COST_SCALAR,
  COST_STRING,
  DEFAULT_DECODE_LIMITS,
  decodeLimitError,
  type DecodeLimits,
} from './decode-limits.js';

/*
 * msgpackr extension types that decode to plain data and are accepted: -1 timestamp (a Date),
 * 0 `undefined`, 0x74 typed arrays (an embedding's Float32Array), 0x42 integers beyond 64
 * bits (BigInt). Everything else — msgpackr's Set, RegExp and Error objects, structured-clone
 * references that can build cycles, records, any application extension — is refused.
 */
const TIMESTAMP_EXTENSION = -1;
const UNDEFINED_EXTENSION = 0;
const TYPED_ARRAY_EXTENSION = 0x74;
const BIGINT_EXTENSION = 0x42;

/** The open containers' remaining values, innermost last; reused (the walk never re-enters). */
const open = new Float64Array(1024);
/** Whether each open container is a map (its remaining count is even when a key comes next). */
const openMap = new Uint8Array(1024);
/** `__proto__` in UTF-8. */
const PROTO_KEY = Buffer.from('__proto__');

/**
 * Checks a msgpack payload before it is decoded, without building anything: one value, well
 * formed, nested at most `maxDepth` deep, no container or string claiming more elements or
 * bytes than the payload has (so a 10-byte payload cannot make the decoder allocate an array
 * of 4 billion slots), and only the accepted extension types. Iterative, so no input can
 * overflow the stack. Throws INVALID_ARGUMENT saying what is wrong and where.
 *
 * It also prices the decoded value (decode-limits.ts): values, keys per map, bytes of a big
 * integer and estimated decoded bytes, refused with RESOURCE_EXHAUSTED naming the limit the
 * moment one is passed. Returns the estimate.
 *
 * One loop over local variables, no closures or objects per call: it runs on every request and
 * every answer, so its cost is part of every call's (0.2 µs for a small request, 6x less than a
 * walk built of closures).
 */
export function checkMsgpack(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): number {
  const length = bytes.length;
  const maxDepth = Math.min(limits.maxDepth, open.length);
  const maxElements = limits.maxElements;
  const maxCost = Math.min(limits.maxDecodedBytes, limits.maxDecodeRatio * length + 64 * 1024);
  let offset = 0;
  let depth = 0;
  let elements = 0;
  let cost = 0;
  for (;;) {
    if (offset >= length) throw malformed(offset, `a value of 1 bytes, only 0 left`);
    const byte = bytes[offset++]!;
    /** Elements of a container that starts here (a map counts keys and values); -1 otherwise. */
    let children = -1;
    let map = false;
    /** Bytes of data after the header of a string, binary, number or extension. */
    let skip = 0;
    let price = COST_SCALAR;
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) {
      // fixint, nil, false, true
    } else if (byte <= 0x8f) {
      children = (byte & 0x0f) * 2;
      map = true;
    } else if (byte <= 0x9f) {
      children = byte & 0x0f;
    } else if (byte <= 0xbf) {
      skip = byte & 0x1f;
      price = COST_STRING + skip;
    } else {
      switch (byte) {
        case 0xd9:
        case 0xda:
        case 0xdb:
          skip = readLength(bytes, offset, byte === 0xd9 ? 1 : byte === 0xda ? 2 : 4);
          offset += byte === 0xd9 ? 1 : byte === 0xda ? 2 : 4;
          price = COST_STRING + skip;
          break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
          skip = readLength(bytes, offset, byte === 0xc4 ? 1 : byte === 0xc5 ? 2 : 4);
          offset += byte === 0xc4 ? 1 : byte === 0xc5 ? 2 : 4;
          price = COST_BINARY + skip;
          break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: {
          let data: number;
          if (byte >= 0xd4) data = 1 << (byte - 0xd4);
          else {
            data = readLength(bytes, offset, byte === 0xc7 ? 1 : byte === 0xc8 ? 2 : 4);
            offset += byte === 0xc7 ? 1 : byte === 0xc8 ? 2 : 4;
          }
          if (offset >= length) throw malformed(offset, `an extension type of 1 bytes, only 0 left`);
          const type = (bytes[offset++]! << 24) >> 24;
          if (type !== TIMESTAMP_EXTENSION && type !== UNDEFINED_EXTENSION && type !== TYPED_ARRAY_EXTENSION && type !== BIGINT_EXTENSION) {
            throw malformed(offset, `extension type ${type} is not accepted (only plain data: no Set, RegExp, Error or references)`);
          }
          if (type === BIGINT_EXTENSION && data > limits.maxBigIntBytes) {
            throw decodeLimitError(`an integer of ${data} bytes, more than ${limits.maxBigIntBytes}`, 'maxBigIntBytes');
          }
          skip = data;
          price = type === UNDEFINED_EXTENSION ? COST_SCALAR : type === TIMESTAMP_EXTENSION ? COST_OBJECT : COST_BINARY + data;
          break;
        }
        case 0xca:
          skip = 4;
          price = COST_DOUBLE;
          break;
        case 0xcb:
          skip = 8;
          price = COST_DOUBLE;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          price = COST_DOUBLE;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          price = COST_DOUBLE;
          break;
        case 0xdc:
          children = readLength(bytes, offset, 2);
          offset += 2;
          break;
        case 0xdd:
          children = readLength(bytes, offset, 4);
          offset += 4;
          break;
        case 0xde:
          children = readLength(bytes, offset, 2) * 2;
          offset += 2;
          map = true;
          break;
        case 0xdf:
          children = readLength(bytes, offset, 4) * 2;
          offset += 4;
          map = true;
          break;
        default:
          throw malformed(offset, `byte 0x${byte.toString(16)} starts no msgpack value`);
      }
    }
    if (skip === PROTO_KEY.length && price === COST_STRING + skip && depth > 0 && openMap[depth - 1] === 1 && open[depth - 1]! % 2 === 0) {
      // msgpackr decodes this key as "__proto_" (it guards the prototype): refused, so that a
      // peer that did not check it (other builds' consumers do not) never sees its data renamed.
      if (isProtoKey(bytes, offset)) throw malformed(offset, 'a map key "__proto__" is not accepted (it would be decoded renamed "__proto_")');
    }
    if (children >= 0) {
      // Every element takes at least one byte.
      if (children > length - offset) throw malformed(offset, `a container of ${children} elements, only ${length - offset} bytes left`);
      if (map && children / 2 > limits.maxMapKeys) throw decodeLimitError(`a map of ${children / 2} keys, more than ${limits.maxMapKeys}`, 'maxMapKeys');
      // A non-empty array also has a backing store (a header of 16 bytes; the slots are counted
      // with the elements).
      price = map ? COST_OBJECT : children === 0 ? COST_ARRAY : COST_ARRAY + 16;
    } else if (skip > length - offset) {
      throw malformed(offset, `data of ${skip} bytes, only ${length - offset} left`);
    }
    offset += skip;
    if (++elements > maxElements) throw decodeLimitError(`more than ${maxElements} values`, 'maxElements');
    cost += price;
    if (cost > maxCost)
      throw decodeLimitError(`would decode to more than ${maxCost} bytes`, maxCost === limits.maxDecodedBytes ? 'maxDecodedBytes' : 'maxDecodeRatio');
    if (children > 0) {
      if (depth >= maxDepth) throw malformed(offset, `nested deeper than ${maxDepth} levels (decode limit maxDepth)`);
      openMap[depth] = map ? 1 : 0;
      open[depth++] = children;
      continue;
    }
    // A value is complete: count it against the innermost open containers.
    while (depth > 0 && --open[depth - 1]! === 0) depth--;
    if (depth === 0) break;
  }
  if (offset !== length) throw malformed(offset, `${length - offset} bytes after the value`);
  return cost;
}

/** Whether the bytes at `offset` spell `__proto__`. */
function isProtoKey(bytes: Uint8Array, offset: number): boolean {
  if (offset + PROTO_KEY.length > bytes.length) return false;
  for (let i = 0; i < PROTO_KEY.length; i++) if (bytes[offset + i] !== PROTO_KEY[i]) return false;
  return true;
}

/** Reads a big-endian length of `width` bytes at `offset`, after checking they are there. */
function readLength(bytes: Uint8Array, offset: number, width: 1 | 2 | 4): number {
  if (width > bytes.length - offset) throw malformed(offset, `a length of ${width} bytes, only ${bytes.length - offset} left`);
  if (width === 1) return bytes[offset]!;
  if (width === 2) return (bytes[offset]! << 8) | bytes[offset + 1]!;
  return bytes[offset]! * 0x1000000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
}

function malformed(offset: number, why: string): RpcError {
  return new RpcError(RpcCode.INVALID_ARGUMENT, `malformed msgpack at byte ${offset}: ${why}`);
}
