import { checkBool, checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { DECODE_LIMIT_KEYS, resolveDecodeLimits } from './decode-limits.js';
import type { DecodeLimits } from './decode-limits.js';
import { checkJsonValue } from './json-check.js';
import { checkJson } from './json-guard.js';
import { SerializerId, type Serializer } from './serializer.js';
import { selfChecked } from './guard.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'json';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON, for debugging and for peers without MessagePack. `undefined` travels as an empty body
 * because JSON has no value for it. What JSON cannot carry faithfully (typed arrays, NaN,
 * Infinity, BigInt, Map, Set, Dates unless declared…; json-check.ts) is refused with
 * INVALID_ARGUMENT naming the path of the bad value, before anything is sent; use msgpack for
 * binary data. Options: `{ dates?: boolean }` — Dates travel as ISO-8601 strings (and arrive
 * as strings) — and the decode limits ({@link DecodeLimits} keys), checked before JSON.parse.
 */
export const createJsonSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('json serializer options', options, ['dates', ...DECODE_LIMIT_KEYS]);
  const limits = resolveDecodeLimits('json serializer', options);
  const check = {
    dates: checkBool('json serializer option dates', options['dates'], false),
    maxDepth: limits.maxDepth,
    maxElements: limits.maxElements,
    maxMapKeys: limits.maxMapKeys,
  };
  /** The payload `check` last passed and its text, so the `decode` that follows reuses both. */
  let checked: { bytes: Uint8Array; text: string } | undefined;
  return selfChecked({
    id: SerializerId.JSON,
    name: TYPE_NAME,
    encode: (value, target) => {
      if (value === undefined) return new Uint8Array(0);
      checkJsonValue(value, target.kind, check);
      return encoder.encode(JSON.stringify(value));
    },
    check: (bytes) => {
      if (bytes.length === 0) return 0;
      const text = decoder.decode(bytes);
      const cost = checkJson(text, bytes.length, limits);
      checked = { bytes, text };
      return cost;
    },
    decode: (bytes) => {
      if (bytes.length === 0) return undefined;
      let text: string;
      if (checked?.bytes === bytes) {
        text = checked.text;
      } else {
        text = decoder.decode(bytes);
        // Priced before JSON.parse builds anything (json-guard.ts): depth, values, keys, bytes.
        checkJson(text, bytes.length, limits);
      }
      checked = undefined;
      return JSON.parse(text) as unknown;
    },
    // JSON.parse makes everything anew: nothing decoded is a view into the bytes.
    ownsDecoded: true,
  });
};
