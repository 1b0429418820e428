import { Packr } from 'msgpackr';
import { SerializerId, type Serializer } from './serializer.js';

/**
 * MessagePack through msgpackr, the default serializer. Plain maps (no msgpackr "records") keep
 * the bytes readable by any MessagePack library in any language; `moreTypes` keeps typed arrays
 * such as an embedding's Float32Array intact (without it msgpackr truncates them to bytes).
 */
export function createMsgpackSerializer(): Serializer {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  return {
    id: SerializerId.MSGPACK,
    name: 'msgpack',
    encode: (value) => packr.pack(value),
    decode: (bytes) => packr.unpack(bytes),
  };
}
