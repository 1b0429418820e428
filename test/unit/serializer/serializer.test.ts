import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import { checkMsgpack } from '../../../src/serializer/msgpack-guard.js';
import { createProtobufSerializer } from '../../../src/serializer/protobuf.js';
import { SerializerSet, decodeError, type PayloadTarget } from '../../../src/serializer/serializer.js';

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
  it('decodes every one-byte payload and every short string as msgpackr does', () => {
    const packr = new Packr({ useRecords: false, moreTypes: true });
    for (let byte = 0; byte < 256; byte++) {
      const bytes = Buffer.from([byte]);
      let expected: unknown;
      try {
        // What decoding was before the short path: the guard, then msgpackr.
        checkMsgpack(bytes);
        expected = packr.unpack(bytes);
      } catch {
        expect(() => msgpack.decode(bytes, response), `byte ${byte}`).toThrow();
        continue;
      }
      expect(msgpack.decode(bytes, response), `byte ${byte}`).toEqual(expected);
    }
    for (const text of ['', 'a', 'tok', ' the', 'twelve bytes', 'thirteen byte', 'é', 'caf\u00e9!', '\u0000\u007f', 'x'.repeat(31), 'y'.repeat(40)]) {
      expect(msgpack.decode(msgpack.encode(text, response), response)).toBe(text);
    }
    // A short fixstr with bytes that are not UTF-8 is msgpackr's to decode, not taken as ASCII.
    const odd = Buffer.from([0xa2, 0xc3, 0x28]);
    expect(msgpack.decode(odd, response)).toBe(packr.unpack(odd));
  });

  it('decodes binary from a small view into a larger read as a copy of its own, so the value does not keep the read', () => {
    expect(msgpack.ownsDecoded).toBe(true);
    const frame = Buffer.from(msgpack.encode({ x: Buffer.from([1, 2, 3]) }, request));
    const read = Buffer.alloc(64 * 1024);
    frame.copy(read, 100);
    const inRead = msgpack.decode(read.subarray(100, 100 + frame.length), request) as { x: Uint8Array };
    expect([...inRead.x]).toEqual([1, 2, 3]);
    expect(inRead.x.buffer.byteLength).toBe(3);
    // Bytes of their own (a large frame read alone) are decoded without a copy.
    const alone = new Uint8Array(frame);
    const own = msgpack.decode(alone, request) as { x: Uint8Array };
    expect(own.x.buffer).toBe(alone.buffer);
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
  it('refuses what JSON cannot carry faithfully with INVALID_ARGUMENT naming its path', () => {
    const cycle: Record<string, unknown> = { name: 'loop' };
    cycle['self'] = cycle;
    const deep: unknown = Array.from({ length: 70 }).reduce<unknown>((inner) => [inner], 1);
    const cases: Array<[unknown, RegExp]> = [
      [{ embedding: new Float32Array([0.5]) }, /cannot carry request\.embedding: it is a Float32Array/],
      [{ xs: [1, Number.NaN] }, /request\.xs\[1\]: it is NaN/],
      [{ a: { b: Number.POSITIVE_INFINITY } }, /request\.a\.b: it is Infinity/],
      [{ big: 10n }, /request\.big: it is a BigInt/],
      [{ 'odd key': new Map() }, /request\["odd key"\]: it is a Map/],
      [[new Set([1])], /request\[0\]: it is a Set/],
      [{ at: new Date(0) }, /request\.at: it is a Date .*declare `dates: true`/],
      [Buffer.from('hi'), /request: it is a Buffer/],
      [{ f: () => 1 }, /request\.f: it is a function/],
      [[1, undefined], /request\[1\]: it is undefined in an array/],
      [cycle, /request\.self: it is a reference to one of its own ancestors/],
      [deep, /nested deeper than 64 levels/],
    ];
    for (const [value, message] of cases) {
      let thrown: unknown;
      try {
        json.encode(value, request);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, String(message)).toMatchObject({ code: RpcCode.INVALID_ARGUMENT, message: expect.stringMatching(message) });
    }
    expect(() => json.encode(-Number.MAX_VALUE, response)).not.toThrow();
    expect(json.decode(json.encode({ kept: 1, dropped: undefined, nested: [{ ok: null }] }, response), response)).toEqual({ kept: 1, nested: [{ ok: null }] });
  });
  it('sends Dates as ISO strings when declared', () => {
    const dated = createJsonSerializer({ dates: true });
    expect(dated.decode(dated.encode({ at: new Date(0) }, request), request)).toEqual({ at: '1970-01-01T00:00:00.000Z' });
    expect(() => createJsonSerializer({ dates: 'yes' })).toThrow(/json serializer option dates: "yes" \(allowed: true or false\)/);
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
    expect(() => protobuf.encode({ a: 'one' }, request)).toThrow(
      /test\.Echo\.add request does not fit test\.AddRequest: request\.a is the string "one", not a number for double/,
    );
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

describe('decodeError', () => {
  it("names the payload and the reason once, without the reason's own code prefix", () => {
    const msgpack = createMsgpackSerializer({}) as never;
    const over = new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'payload refused before decoding: more than 10 values');
    const error = decodeError({ service: 's.S', method: 'm', kind: 'request' }, msgpack, over);
    expect(error).toMatchObject({ code: RpcCode.INVALID_ARGUMENT, cause: over });
    expect(error.message).toBe('[invalid argument] cannot decode request of s.S.m as msgpack: payload refused before decoding: more than 10 values');
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
