import type { BuiltinExtension } from '../common/extension-registry.js';
import { createJsonSerializer, TYPE_NAME as JSON_NAME } from './json.js';
import { createMsgpackSerializer, TYPE_NAME as MSGPACK } from './msgpack.js';
import { createProtobufSerializer, TYPE_NAME as PROTOBUF } from './protobuf.js';
import { SerializerId, type Serializer } from './serializer.js';

/** The built-in serializers, each claiming its wire id. */
export const BUILTIN_SERIALIZERS: readonly BuiltinExtension<Serializer>[] = [
  { name: MSGPACK, factory: createMsgpackSerializer, options: { uniqueKey: SerializerId.MSGPACK } },
  { name: JSON_NAME, factory: createJsonSerializer, options: { uniqueKey: SerializerId.JSON } },
  { name: PROTOBUF, factory: createProtobufSerializer, options: { uniqueKey: SerializerId.PROTOBUF } },
];
