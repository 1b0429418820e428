import { checkBool, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import { checkJsonValue } from './json-check.js';
import { SerializerId, type Serializer } from './serializer.js';

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
 * as strings).
 */
export const createJsonSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('json serializer options', options, ['dates']);
  const check = { dates: checkBool('json serializer option dates', options['dates'], false), maxDepth: MAX_JSON_DEPTH };
  return {
    id: SerializerId.JSON,
    name: TYPE_NAME,
    encode: (value, target) => {
      if (value === undefined) return new Uint8Array(0);
      checkJsonValue(value, target.kind, check);
      return encoder.encode(JSON.stringify(value));
    },
    decode: (bytes) => {
      if (bytes.length === 0) return undefined;
      const text = decoder.decode(bytes);
      checkJsonDepth(text);
      return JSON.parse(text) as unknown;
    },
  };
};

/** Deepest nesting of arrays and objects a JSON payload may have (as for msgpack). */
export const MAX_JSON_DEPTH = 64;

/**
 * Refuses JSON nested deeper than `maxDepth` before JSON.parse, which is recursive, sees it.
 * Brackets inside strings (escapes included) do not count. Throws INVALID_ARGUMENT.
 */
export function checkJsonDepth(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (inString) {
      if (code === 0x5c) i++;
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x5b || code === 0x7b) {
      if (++depth > maxDepth) throw new RpcError(RpcCode.INVALID_ARGUMENT, `JSON nested deeper than ${maxDepth} levels (at character ${i})`);
    } else if (code === 0x5d || code === 0x7d) depth--;
  }
}
