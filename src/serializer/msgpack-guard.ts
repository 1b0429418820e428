import { RpcCode, RpcError } from '../errors/errors.js';
import {
  COST_ARRAY,
  COST_BINARY,
  COST_DOUBLE,
  COST_OBJECT,
  COST_SCALAR,
  COST_STRING,
  DecodeCost,
  DEFAULT_DECODE_LIMITS,
  type DecodeLimits,
} from './decode-limits.js';

/**
 * msgpackr extension types that decode to plain data and are accepted: -1 timestamp (a Date),
 * 0 `undefined`, 0x74 typed arrays (an embedding's Float32Array), 0x42 integers beyond 64
 * bits (BigInt).
 * Everything else — msgpackr's Set, RegExp and Error objects, structured-clone references
 * that can build cycles, records, any application extension — is refused.
 */
const ACCEPTED_EXTENSIONS = new Set([-1, 0, 0x74, 0x42]);
const TIMESTAMP_EXTENSION = -1;
const UNDEFINED_EXTENSION = 0;
const BIGINT_EXTENSION = 0x42;

/**
 * Checks a msgpack payload before it is decoded, without building anything: one value, well
 * formed, nested at most `maxDepth` deep, no container or string claiming more elements or
 * bytes than the payload has (so a 10-byte payload cannot make the decoder allocate an array
 * of 4 billion slots), and only the accepted extension types. Iterative, so no input can
 * overflow the stack. Throws INVALID_ARGUMENT saying what is wrong and where.
 *
 * It also prices the decoded value ({@link DecodeCost}): values, keys per map, big integers
 * and estimated bytes, refused with RESOURCE_EXHAUSTED naming the limit. Returns the estimate.
 */
export function checkMsgpack(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): number {
  const maxDepth = limits.maxDepth;
  const cost = new DecodeCost(limits, bytes.length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = bytes.length;
  /** Values still to read in each open container, innermost last. */
  const open: number[] = [];
  let offset = 0;
  const fail = (why: string): never => {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `malformed msgpack at byte ${offset}: ${why}`);
  };
  const need = (count: number, what: string): void => {
    if (count > length - offset) fail(`${what} of ${count} bytes, only ${length - offset} left`);
  };
  const size = (width: 1 | 2 | 4): number => {
    need(width, 'a length');
    const value = width === 1 ? view.getUint8(offset) : width === 2 ? view.getUint16(offset) : view.getUint32(offset);
    offset += width;
    return value;
  };
  const container = (elements: number, map: boolean): void => {
    // Every element takes at least one byte.
    if (elements > length - offset) fail(`a container of ${elements} elements, only ${length - offset} bytes left`);
    if (map) cost.mapKeys(elements / 2);
    // A non-empty array also has a backing store (a header of 16 bytes; the slots are counted
    // with the elements).
    cost.add(map ? COST_OBJECT : elements === 0 ? COST_ARRAY : COST_ARRAY + 16);
    if (elements === 0) return done();
    if (open.length >= maxDepth) fail(`nested deeper than ${maxDepth} levels (decode limit maxDepth)`);
    open.push(elements);
  };
  const extension = (dataBytes: number): void => {
    need(1, 'an extension type');
    const type = view.getInt8(offset);
    offset += 1;
    if (!ACCEPTED_EXTENSIONS.has(type)) fail(`extension type ${type} is not accepted (only plain data: no Set, RegExp, Error or references)`);
    need(dataBytes, 'extension data');
    if (type === BIGINT_EXTENSION) cost.bigInt(dataBytes);
    cost.add(type === UNDEFINED_EXTENSION ? COST_SCALAR : type === TIMESTAMP_EXTENSION ? COST_OBJECT : COST_BINARY + dataBytes);
    offset += dataBytes;
    done();
  };
  /** A value is complete: count it against the innermost container. */
  const done = (): void => {
    while (open.length > 0) {
      const left = open[open.length - 1]! - 1;
      if (left > 0) {
        open[open.length - 1] = left;
        return;
      }
      open.pop();
    }
    finished = true;
  };
  let finished = false;

  while (!finished) {
    need(1, 'a value');
    const byte = bytes[offset++]!;
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) {
      cost.add(COST_SCALAR);
      done();
    } else if (byte <= 0x8f) container((byte & 0x0f) * 2, true);
    else if (byte <= 0x9f) container(byte & 0x0f, false);
    else if (byte <= 0xbf) text(byte & 0x1f);
    else {
      switch (byte) {
        case 0xd9: text(size(1)); break;
        case 0xda: text(size(2)); break;
        case 0xdb: text(size(4)); break;
        case 0xc4: binary(size(1)); break;
        case 0xc5: binary(size(2)); break;
        case 0xc6: binary(size(4)); break;
        case 0xc7: { const data = size(1); extension(data); break; }
        case 0xc8: { const data = size(2); extension(data); break; }
        case 0xc9: { const data = size(4); extension(data); break; }
        case 0xca: skip(4, COST_DOUBLE); break;
        case 0xcb: skip(8, COST_DOUBLE); break;
        case 0xcc: case 0xd0: skip(1, COST_SCALAR); break;
        case 0xcd: case 0xd1: skip(2, COST_SCALAR); break;
        case 0xce: case 0xd2: skip(4, COST_DOUBLE); break;
        case 0xcf: case 0xd3: skip(8, COST_DOUBLE); break;
        case 0xd4: extension(1); break;
        case 0xd5: extension(2); break;
        case 0xd6: extension(4); break;
        case 0xd7: extension(8); break;
        case 0xd8: extension(16); break;
        case 0xdc: container(size(2), false); break;
        case 0xdd: container(size(4), false); break;
        case 0xde: container(size(2) * 2, true); break;
        case 0xdf: container(size(4) * 2, true); break;
        default: fail(`byte 0x${byte.toString(16)} starts no msgpack value`);
      }
    }
  }
  if (offset !== length) fail(`${length - offset} bytes after the value`);
  return cost.bytes;

  function skip(count: number, estimate: number): void {
    need(count, 'data');
    cost.add(estimate);
    offset += count;
    done();
  }
  function text(count: number): void {
    skip(count, COST_STRING + count);
  }
  function binary(count: number): void {
    skip(count, COST_BINARY + count);
  }
}
