import { SerializerId, type Serializer } from './serializer.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON, for debugging and for peers without MessagePack. `undefined` travels as an empty body
 * because JSON has no value for it; typed arrays become plain objects, as JSON.stringify makes
 * them, so prefer msgpack for binary data.
 */
export function createJsonSerializer(): Serializer {
  return {
    id: SerializerId.JSON,
    name: 'json',
    encode: (value) => (value === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(value))),
    decode: (bytes) => (bytes.length === 0 ? undefined : (JSON.parse(decoder.decode(bytes)) as unknown)),
  };
}
