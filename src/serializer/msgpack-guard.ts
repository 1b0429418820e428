import { RpcCode, RpcError } from '../errors/errors.js';

/** Deepest nesting of arrays and maps a msgpack payload may have. */
export const MAX_MSGPACK_DEPTH = 64;

/**
 * msgpackr extension types that decode to plain data and are accepted: -1 timestamp (a Date),
 * 0 `undefined`, 0x74 typed arrays (an embedding's Float32Array), 0x42 integers beyond 64
 * bits (BigInt).
 * Everything else — msgpackr's Set, RegExp and Error objects, structured-clone references
 * that can build cycles, records, any application extension — is refused.
 */
const ACCEPTED_EXTENSIONS = new Set([-1, 0, 0x74, 0x42]);

/**
 * Checks a msgpack payload before it is decoded, without building anything: one value, well
 * formed, nested at most `maxDepth` deep, no container or string claiming more elements or
 * bytes than the payload has (so a 10-byte payload cannot make the decoder allocate an array
 * of 4 billion slots), and only the accepted extension types. Iterative, so no input can
 * overflow the stack. Throws INVALID_ARGUMENT saying what is wrong and where.
 */
export function checkMsgpack(bytes: Uint8Array, maxDepth = MAX_MSGPACK_DEPTH): void {
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
  const container = (elements: number): void => {
    // Every element takes at least one byte.
    if (elements > length - offset) fail(`a container of ${elements} elements, only ${length - offset} bytes left`);
    if (elements === 0) return done();
    if (open.length >= maxDepth) fail(`nested deeper than ${maxDepth} levels`);
    open.push(elements);
  };
  const extension = (dataBytes: number): void => {
    need(1, 'an extension type');
    const type = view.getInt8(offset);
    offset += 1;
    if (!ACCEPTED_EXTENSIONS.has(type)) fail(`extension type ${type} is not accepted (only plain data: no Set, RegExp, Error or references)`);
    need(dataBytes, 'extension data');
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
    if (byte <= 0x7f || byte >= 0xe0 || byte === 0xc0 || byte === 0xc2 || byte === 0xc3) done();
    else if (byte <= 0x8f) container((byte & 0x0f) * 2);
    else if (byte <= 0x9f) container(byte & 0x0f);
    else if (byte <= 0xbf) skip(byte & 0x1f);
    else {
      switch (byte) {
        case 0xc4: case 0xd9: skip(size(1)); break;
        case 0xc5: case 0xda: skip(size(2)); break;
        case 0xc6: case 0xdb: skip(size(4)); break;
        case 0xc7: { const data = size(1); extension(data); break; }
        case 0xc8: { const data = size(2); extension(data); break; }
        case 0xc9: { const data = size(4); extension(data); break; }
        case 0xca: skip(4); break;
        case 0xcb: skip(8); break;
        case 0xcc: case 0xd0: skip(1); break;
        case 0xcd: case 0xd1: skip(2); break;
        case 0xce: case 0xd2: skip(4); break;
        case 0xcf: case 0xd3: skip(8); break;
        case 0xd4: extension(1); break;
        case 0xd5: extension(2); break;
        case 0xd6: extension(4); break;
        case 0xd7: extension(8); break;
        case 0xd8: extension(16); break;
        case 0xdc: container(size(2)); break;
        case 0xdd: container(size(4)); break;
        case 0xde: container(size(2) * 2); break;
        case 0xdf: container(size(4) * 2); break;
        default: fail(`byte 0x${byte.toString(16)} starts no msgpack value`);
      }
    }
  }
  if (offset !== length) fail(`${length - offset} bytes after the value`);

  function skip(count: number): void {
    need(count, 'data');
    offset += count;
    done();
  }
}
