import { Packr } from 'msgpackr';
import { checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { DECODE_LIMIT_KEYS, resolveDecodeLimits, type DecodeLimits } from './decode-limits.js';
import { checkMsgpack } from './msgpack-guard.js';
import { SerializerId, type Serializer } from './serializer.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'msgpack';

/**
 * MessagePack through msgpackr, the default serializer. Plain maps (no msgpackr "records") keep
 * the bytes readable by any MessagePack library in any language; `moreTypes` keeps typed arrays
 * such as an embedding's Float32Array intact (without it msgpackr truncates them to bytes).
 * Decoding accepts plain data only: maps, arrays, strings, numbers (64-bit integers beyond
 * 2^53 as BigInt; -0 arrives as 0), binary, timestamps as Date, typed arrays; within the
 * decode limits (options: {@link DecodeLimits} keys, e.g. `{ maxDecodedBytes: 64 * 2 ** 20 }`).
 */
export const createMsgpackSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('msgpack serializer options', options, DECODE_LIMIT_KEYS);
  const limits = resolveDecodeLimits('msgpack serializer', options);
  const packr = new Packr({ useRecords: false, moreTypes: true });
  /** The payload `check` last passed, so the `decode` that follows need not walk it again. */
  let checked: Uint8Array | undefined;
  return {
    id: SerializerId.MSGPACK,
    name: TYPE_NAME,
    encode: (value) => packr.pack(value),
    check: (bytes) => {
      const cost = checkMsgpack(bytes, limits);
      checked = bytes;
      return cost;
    },
    // Checked first: plain data only, bounded depth, sizes and cost (msgpack-guard.ts).
    decode: (bytes) => {
      if (bytes !== checked) checkMsgpack(bytes, limits);
      checked = undefined;
      return packr.unpack(bytes);
    },
  };
};
