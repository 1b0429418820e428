import { Packr } from 'msgpackr';
import { checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import { checkMsgpack } from './msgpack-guard.js';
import { SerializerId, type Serializer } from './serializer.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'msgpack';

/**
 * MessagePack through msgpackr, the default serializer. Plain maps (no msgpackr "records") keep
 * the bytes readable by any MessagePack library in any language; `moreTypes` keeps typed arrays
 * such as an embedding's Float32Array intact (without it msgpackr truncates them to bytes).
 * Decoding accepts plain data only: maps, arrays, strings, numbers (64-bit integers beyond
 * 2^53 as BigInt; -0 arrives as 0), binary, timestamps as Date, typed arrays; at most 64
 * levels deep.
 */
export const createMsgpackSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('msgpack serializer options', options, []);
  const packr = new Packr({ useRecords: false, moreTypes: true });
  return {
    id: SerializerId.MSGPACK,
    name: TYPE_NAME,
    encode: (value) => packr.pack(value),
    // Checked first: plain data only, bounded depth and sizes (msgpack-guard.ts).
    decode: (bytes) => {
      checkMsgpack(bytes);
      return packr.unpack(bytes);
    },
  };
};
