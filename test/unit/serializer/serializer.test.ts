import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import { createProtobufSerializer } from '../../../src/serializer/protobuf.js';
import { SerializerSet, type PayloadTarget } from '../../../src/serializer/serializer.js';

const defaultSerializers = () => [createMsgpackSerializer({}), createJsonSerializer({})];

const request: PayloadTarget = { service: 'test.Echo', method: 'add', kind: 'request' };
const response: PayloadTarget = { ...request, kind: 'response' };
const proto = fileURLToPath(new URL('../../fixtures/echo.proto', import.meta.url));

describe('msgpack serializer', () => {
  const msgpack = createMsgpackSerializer({});
  it('has the stable id 1 and round-trips plain data, undefined and typed arrays', () => {
    expect(msgpack.id).toBe(1);
    const value = { text: 'héllo', n: 1.5, list: [1, null, true], nested: { deep: 'x' }, none: undefined };
    expect(msgpack.decode(msgpack.encode(value, request), request)).toEqual(value);
    expect(msgpack.decode(msgpack.encode(undefined, request), request)).toBeUndefined();
    const embedding = new Float32Array([0.25, -1.5, 3]);
    expect(msgpack.decode(msgpack.encode(embedding, response), response)).toEqual(embedding);
    expect(msgpack.decode(msgpack.encode(Buffer.from([1, 2]), response), response)).toEqual(Buffer.from([1, 2]));
  });
  it('throws on truncated bytes and on trailing garbage', () => {
    // The guard (msgpack-guard.ts) finds both before msgpackr sees them, and says where.
    expect(() => msgpack.decode(Buffer.from([0x92, 0x01]), request)).toThrow(/malformed msgpack at byte 1: a container of 2 elements, only 1 bytes left/);
    expect(() => msgpack.decode(Buffer.from([0x01, 0x02]), request)).toThrow(/malformed msgpack at byte 1: 1 bytes after the value/);
  });
});

describe('json serializer', () => {
  const json = createJsonSerializer({});
  it('has the stable id 2 and round-trips JSON data, with undefined as an empty body', () => {
    expect(json.id).toBe(2);
    expect(json.decode(json.encode({ a: [1, 'b'] }, request), request)).toEqual({ a: [1, 'b'] });
    expect(json.encode(undefined, request)).toHaveLength(0);
    expect(json.decode(new Uint8Array(0), request)).toBeUndefined();
  });
  it('throws on bytes that are not UTF-8 JSON', () => {
    expect(() => json.decode(Buffer.from('{nope'), request)).toThrow();
    expect(() => json.decode(Buffer.from([0x22, 0xff, 0x22]), request)).toThrow();
  });
});

describe('protobuf serializer', () => {
  const protobuf = createProtobufSerializer({ files: [proto] });
  it('has the stable id 3 and maps a method to its rpc input and output types', () => {
    expect(protobuf.id).toBe(3);
    const bytes = protobuf.encode({ a: 1.5, b: 2 }, request);
    // field 1 (double) = 1.5, field 2 (double) = 2: real protobuf bytes, not JSON in disguise.
    expect(Buffer.from(bytes).toString('hex')).toBe('09000000000000f83f110000000000000040');
    expect(protobuf.decode(bytes, request)).toEqual({ a: 1.5, b: 2 });
    expect(protobuf.decode(protobuf.encode({ sum: 3.5 }, response), response)).toEqual({ sum: 3.5 });
  });
  it('refuses values that do not fit the message type, naming the field', () => {
    expect(() => protobuf.encode({ a: 'one' }, request)).toThrow(/test\.Echo\.add request does not fit test\.AddRequest: a: number expected/);
    expect(() => protobuf.encode(7, request)).toThrow(/must be an object/);
  });
  it('says which service or rpc is missing from the schema', () => {
    expect(() => protobuf.encode({}, { ...request, method: 'echo' })).toThrow(/no rpc echo \(or Echo\) in service test\.Echo/);
    expect(() => protobuf.encode({}, { ...request, service: 'other.Svc' })).toThrow(/no service other\.Svc/);
  });
  it('requires local .proto files', () => {
    expect(() => createProtobufSerializer({ files: [] })).toThrow(/invalid protobuf files/);
  });
});

describe('SerializerSet', () => {
  it('finds serializers by id and name and lists the known names on a miss', () => {
    const set = new SerializerSet(defaultSerializers());
    expect(set.byId(1)?.name).toBe('msgpack');
    expect(set.byId(3)).toBeUndefined();
    expect(() => set.byName('avro')).toThrow(/invalid serializer: "avro" \(allowed: msgpack, json\)/);
  });
  it('refuses two serializers with one id', () => {
    const clash = { ...createJsonSerializer({}), name: 'json2', id: 1 };
    expect(() => new SerializerSet([...defaultSerializers(), clash])).toThrow(/an id not already used by msgpack/);
  });
});
