import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { messageCodec } from '../../../src/serializer/protobuf.js';

/*
 * A protobuf message either arrives as it was sent or is refused before sending, naming the
 * field: protobufjs's verify alone let through values that arrived changed (a field dropped,
 * an int32 wrapped, a Map for a map field emptied) and refused 64-bit integers as BigInt.
 */
const root = protobuf.parse(
  `
  syntax = "proto3";
  package p;
  enum Color { RED = 0; GREEN = 1; }
  message Inner { string s = 1; }
  message Req {
    int32 i32 = 1; uint32 u32 = 2; int64 i64 = 3; uint64 u64 = 4; float f = 5; double d = 6;
    string s = 7; bytes b = 8; bool ok = 9; repeated int32 list = 10; map<string, int32> m = 11;
    Inner inner = 12; Color color = 13; sint64 s64 = 14;
    oneof choice { string left = 15; int32 right = 16; }
  }
`,
  { keepCase: true },
).root;
root.resolveAll();
const codec = messageCodec(root.lookupType('p.Req'));

function roundTrip(value: Record<string, unknown>): Record<string, unknown> {
  return codec.decode(codec.encode(value, 'p.S.M request'));
}

function refusal(value: unknown): RpcError {
  try {
    codec.encode(value, 'p.S.M request');
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    expect((error as RpcError).code).toBe(RpcCode.INVALID_ARGUMENT);
    return error as RpcError;
  }
  throw new Error('expected the encode to be refused');
}

describe('protobuf messages arrive as sent, or are refused naming the field', () => {
  it.each([
    ['a field the message does not declare', { i32: 1, typo: 2 }, 'request.typo is not a field of p.Req (its fields: i32, u32,'],
    ['a __proto__ key', JSON.parse('{"__proto__":{"i32":5}}'), 'request.__proto__ is not a field of p.Req'],
    ['an undeclared field of a nested message', { inner: { s: 'x', extra: 1 } }, 'request.inner.extra is not a field of p.Inner (its fields: s)'],
    ['an int32 past its range (it arrived as 0)', { i32: 2 ** 40 }, 'request.i32 is 1099511627776, outside int32 (-2147483648 to 2147483647)'],
    ['a negative uint32 (it arrived as 4294967295)', { u32: -1 }, 'request.u32 is -1, outside uint32 (0 to 4294967295)'],
    ['a negative uint64 (it arrived as 0)', { u64: -5 }, 'request.u64 is -5, outside uint64 (0 to 18446744073709551615)'],
    ['a uint64 past 2^64', { u64: 2n ** 64n }, 'request.u64 is 18446744073709551616, outside uint64'],
    ['a float past float32 (it arrived as Infinity)', { f: 1e40 }, 'request.f is 1e+40, past float'],
    ['a lone surrogate (the receiver failed to decode it)', { s: 'x\ud800' }, 'request.s is a string with a lone surrogate'],
    ['a Map for a map field (it arrived empty)', { m: new Map([['a', 1]]) }, 'request.m is a Map, not a plain object for a map field'],
    ['a fraction in a map value', { m: { a: 1.5 } }, 'request.m.a is 1.5, not an integer for int32'],
    ['bytes that are not base64 (a bare Error escaped)', { b: 'not base64!' }, 'request.b is the string "not base64!", not bytes'],
    ['two members of one oneof', { left: 'a', right: 1 }, 'request.right is set beside left, in the same oneof choice'],
    ['an enum name', { color: 'GREEN' }, 'request.color is the string "GREEN", not a number of enum p.Color (RED = 0, GREEN = 1)'],
    ['a Set for a repeated field', { list: new Set([1]) }, 'request.list is a Set, not an array for a repeated field'],
  ])('refuses %s', (_name, value, words) => {
    expect(refusal(value).rawMessage).toContain(`p.S.M request does not fit p.Req: ${words}`);
  });

  it('sends 64-bit integers exactly: from a BigInt, a decimal string (as they arrive) or a safe number', () => {
    const sent = { i64: 2n ** 60n + 1n, u64: '18446744073709551615', s64: -(2n ** 63n) };
    const back = roundTrip(sent);
    expect(back).toMatchObject({ i64: '1152921504606846977', u64: '18446744073709551615', s64: '-9223372036854775808' });
    // What arrives can be sent back as it is.
    expect(roundTrip({ i64: back['i64'], u64: back['u64'], s64: back['s64'] })).toMatchObject({ i64: '1152921504606846977', u64: '18446744073709551615' });
    expect(roundTrip({ i64: 42 })).toMatchObject({ i64: '42' });
  });

  it('still carries what fits: nested messages, maps, repeated fields, bytes, enums by number, unset fields', () => {
    const back = roundTrip({ inner: { s: 'héllo 🚀' }, m: { a: 1 }, list: [1, 2], b: Buffer.from('hi'), color: 1, ok: true, s: undefined, d: null });
    expect(back).toMatchObject({ inner: { s: 'héllo 🚀' }, m: { a: 1 }, list: [1, 2], color: 1, ok: true, s: '', d: 0 });
    expect(Buffer.from(back['b'] as Uint8Array).toString()).toBe('hi');
    const message = root.lookupType('p.Req').create({ i32: 5 });
    expect(roundTrip(message as unknown as Record<string, unknown>)).toMatchObject({ i32: 5 });
  });
});

describe('a protobuf response that does not fit', () => {
  it('is INTERNAL: the provider made it', () => {
    expect(() => codec.encode({ typo: 1 }, 'p.S.M response')).toThrow(
      expect.objectContaining({
        code: RpcCode.INTERNAL,
        rawMessage: expect.stringContaining('p.S.M response does not fit p.Req: response.typo is not a field') as unknown,
      }),
    );
  });
});
