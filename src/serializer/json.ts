import { checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import { SerializerId, type Serializer } from './serializer.js';

/** The name this serializer is registered under. */
export const TYPE_NAME = 'json';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON, for debugging and for peers without MessagePack. `undefined` travels as an empty body
 * because JSON has no value for it; typed arrays become plain objects, as JSON.stringify makes
 * them, so prefer msgpack for binary data.
 */
export const createJsonSerializer: ExtensionFactory<Serializer> = (options = {}) => {
  checkKnownKeys('json serializer options', options, []);
  return {
    id: SerializerId.JSON,
    name: TYPE_NAME,
    encode: (value) => (value === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(value))),
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
