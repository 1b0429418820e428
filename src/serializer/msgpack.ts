import { Packr } from 'msgpackr';
import { checkKnownKeys } from '../common/validate.js';
import { RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { DECODE_LIMIT_KEYS, resolveDecodeLimits, type DecodeLimits } from './decode-limits.js';
import { encodeFailure } from './encode-failure.js';
import { checkMsgpackValue } from './msgpack-check.js';
import { checkMsgpack } from './msgpack-guard.js';
import { SerializerId, sharesMemory, type Serializer } from './serializer.js';
import { selfChecked } from './guard.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'msgpack';

/**
 * MessagePack through msgpackr, the default serializer. Plain maps (no msgpackr "records") keep
 * the bytes readable by any MessagePack library in any language; `moreTypes` keeps typed arrays
 * such as an embedding's Float32Array intact (without it msgpackr truncates them to bytes).
 * Decoding accepts plain data only: maps, arrays, strings, numbers (64-bit integers beyond
 * 2^53 as BigInt; -0 arrives as 0), binary, timestamps as Date, typed arrays; within the
 * decode limits (options: {@link DecodeLimits} keys, e.g. `{ maxDecodedBytes: 64 * 2 ** 20 }`).
 * Encoding refuses first, naming the path, what decoding would refuse or change
 * (msgpack-check.ts), so the two sides agree on what is allowed.
 */
export const createMsgpackSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('msgpack serializer options', options, DECODE_LIMIT_KEYS);
  const limits = resolveDecodeLimits('msgpack serializer', options);
  const packr = new Packr({ useRecords: false, moreTypes: true });
  // Binary values are views into the bytes decoded unless copied: copied when those bytes are a
  // small part of a larger read, so nothing decoded keeps the read alive. Only binary values are
  // copied, and only then; everything else msgpack decodes is made anew anyway.
  const copying = new Packr({ useRecords: false, moreTypes: true, copyBuffers: true });
  /** The payload `check` last passed, so the `decode` that follows need not walk it again. */
  let checked: Uint8Array | undefined;
  return selfChecked({
    id: SerializerId.MSGPACK,
    name: TYPE_NAME,
    encode: (value, target) => {
      // What the receiver would refuse or receive changed is refused here, naming its path,
      // before anything is sent (msgpack-check.ts): the same limits as the decoder's.
      try {
        checkMsgpackValue(value, target, limits);
        return packr.pack(value);
      } catch (error) {
        if (error instanceof RpcError) throw error;
        throw encodeFailure(target, TYPE_NAME, value, error);
      }
    },
    check: (bytes) => {
      const cost = checkMsgpack(bytes, limits);
      checked = bytes;
      return cost;
    },
    // Checked first: plain data only, bounded depth, sizes and cost (msgpack-guard.ts).
    decode: (bytes) => {
      if (bytes !== checked) checkMsgpack(bytes, limits);
      checked = undefined;
      const tiny = decodeTiny(bytes);
      return tiny !== NOT_TINY ? tiny : (sharesMemory(bytes) ? copying : packr).unpack(bytes);
    },
    ownsDecoded: true,
  });
};

const NOT_TINY = Symbol('not tiny');

/**
 * Decodes the smallest payloads without msgpackr: one short ASCII string (a streamed token), a
 * small integer, a boolean or nil. msgpackr's setup per call costs more than decoding such a
 * value, and a token stream decodes one per chunk. Anything else is msgpackr's.
 */
function decodeTiny(bytes: Uint8Array): unknown {
  const first = bytes[0]!;
  if (bytes.length === 1) {
    if (first <= 0x7f) return first;
    if (first >= 0xe0) return first - 0x100;
    if (first === 0xc0) return null;
    if (first === 0xc2) return false;
    if (first === 0xc3) return true;
    return NOT_TINY;
  }
  // fixstr of up to 12 bytes (a concatenation that short stays a flat string), all ASCII.
  if (first < 0xa0 || first > 0xac || bytes.length !== (first & 0x1f) + 1) return NOT_TINY;
  let text = '';
  for (let i = 1; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) return NOT_TINY;
    text += String.fromCharCode(byte);
  }
  return text;
}
