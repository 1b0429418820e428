import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import type { Serializer } from '../../../src/serializer/serializer.js';

/*
 * The msgpack sender and receiver agree: what the sender encodes, the receiver decodes to the
 * same value (a Map becomes a plain object, -0 becomes 0, a class instance its own fields: the
 * documented conversions); what the receiver would refuse or change, the sender refuses first,
 * naming the path.
 */
const msgpack = createMsgpackSerializer({}) as Serializer;
const request = { service: 's.S', method: 'm', kind: 'request' } as const;

/** The value the receiver is meant to get for `value` (the documented conversions applied). */
function delivered(value: unknown): unknown {
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value;
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date) return value;
  if (Array.isArray(value)) return Array.from(value, delivered);
  const entries = value instanceof Map ? [...value] : Object.keys(value).map((key) => [key, (value as Record<string, unknown>)[key]] as const);
  return Object.fromEntries(entries.map(([key, item]) => [key, delivered(item)]));
}

function refusal(value: unknown, kind: 'request' | 'response' = 'request'): RpcError {
  try {
    msgpack.encode(value, { ...request, kind });
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    return error as RpcError;
  }
  throw new Error('expected the encode to be refused');
}

describe('the msgpack sender refuses what the receiver would refuse or change', () => {
  it('any value: either refused with a path, or decoded to the same value', () => {
    const anything = fc.anything({
      maxDepth: 4,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withNullPrototype: true,
      withObjectString: true,
      withSet: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
      key: fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'prototype', '\ud800', 'a\udc00b')),
    });
    const value = fc.oneof(
      anything,
      fc.record({ fn: fc.func(fc.integer()), loneSurrogate: fc.constantFrom('\ud83d', 'x\udc00'), re: fc.constant(/x/) }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(value, (sent) => {
        let bytes: Uint8Array;
        try {
          bytes = msgpack.encode(sent, request);
        } catch (error) {
          expect(error).toBeInstanceOf(RpcError);
          expect((error as RpcError).code).toBe(RpcCode.INVALID_ARGUMENT);
          expect((error as RpcError).rawMessage).toMatch(/^cannot encode the request of s\.S\.m as msgpack: request.* (is|refers back to) /);
          return;
        }
        expect(msgpack.decode(Buffer.from(bytes), request)).toEqual(delivered(sent));
      }),
      { numRuns: 3000, seed: 7 },
    );
  });

  it.each([
    ['a Set', { a: [new Set([1])] }, 'request.a[0] is a Set'],
    ['a Set as the whole request', new Set(), 'request is a Set'],
    ['a RegExp in a Map', new Map([['re', /x/]]), 'request.get("re") is a RegExp'],
    ['an Error', { cause: new TypeError('x') }, 'request.cause is an Error'],
    ['a WeakMap', { w: new WeakMap() }, 'request.w is a WeakMap'],
    ['a Promise', { p: Promise.resolve() }, 'request.p is a Promise'],
    ['an AbortSignal', { prompt: 'x', signal: new AbortController().signal }, 'request.signal is an EventTarget such as an AbortSignal'],
    ['a boxed number', [new Number(1)], 'request[0] is a Number object'],
    ['a function', { f: () => 1 }, 'request.f is a function'],
    ['a symbol', { s: Symbol('s') }, 'request.s is a symbol'],
    [
      'a class with toJSON',
      {
        when: new (class Stamp {
          toJSON = undefined;
          x = 1;
        })(),
        money: new (class Money {
          toJSON() {
            return '1.00';
          }
        })(),
      },
      'request.money is an object with a toJSON method',
    ],
    ['a __proto__ key', JSON.parse('{"ok":1,"__proto__":{"x":1}}'), 'request.__proto__ is the key "__proto__"'],
    ['a __proto__ key in a Map', new Map([['__proto__', 1]]), 'request.keys()[0] is the key "__proto__"'],
    ['a lone high surrogate', 'tok\ud83d', 'request is a string with a lone surrogate'],
    ['a lone low surrogate, long', { text: `${'x'.repeat(100)}\ude80` }, 'request.text is a string with a lone surrogate'],
    ['a key with a lone surrogate', { ['odd \ud800']: 1 }, 'request["odd \\ud800"] is a key with a lone surrogate'],
    ['a Map key that is an object', new Map([[{}, 1]]), 'request.keys()[0] is a Map key of type object'],
    ['an integer past maxBigIntBytes', { n: 2n ** 9000n }, 'request.n is an integer of 1126 bytes, more than 1024'],
  ])('%s', (_name, value, words) => {
    const error = refusal(value);
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.rawMessage).toContain(`cannot encode the request of s.S.m as msgpack: ${words}`);
  });

  it('a response the receiver would refuse is INTERNAL: the provider sent it', () => {
    expect(refusal({ s: new Set() }, 'response')).toMatchObject({
      code: RpcCode.INTERNAL,
      rawMessage: expect.stringContaining('response.s is a Set') as unknown,
    });
  });

  it('the limits are the decoder’s, counted as it counts them', () => {
    const small = createMsgpackSerializer({ maxElements: 10, maxDepth: 3, maxMapKeys: 4 }) as Serializer;
    // The decoder counts the array itself and its items: 10 values in all pass, 11 do not.
    const nine = Array.from({ length: 9 }, () => 0);
    expect(small.decode(Buffer.from(small.encode(nine, request)), request)).toEqual(nine);
    const error = (() => {
      try {
        small.encode([...nine, 0], request);
      } catch (caught) {
        return caught as RpcError;
      }
      throw new Error('not refused');
    })();
    expect(error.rawMessage).toContain('request[9] is one value too many: more than 10 in all, keys included (decode limit maxElements)');
    // A map's keys count as values too, on both sides: 1 + 4 keys + 4 values pass, 1 + 5 + 5 do not.
    const ten = createMsgpackSerializer({ maxElements: 10 }) as Serializer;
    const four = { a: 1, b: 2, c: 3, d: 4 };
    expect(ten.decode(Buffer.from(ten.encode(four, request)), request)).toEqual(four);
    const roomy = createMsgpackSerializer({}) as Serializer;
    const five = { a: 1, b: 2, c: 3, d: 4, e: 5 };
    expect(() => ten.decode(Buffer.from(roomy.encode(five, request)), request)).toThrow(/more than 10 values \(decode limit maxElements/);
    expect(() => ten.encode(five, request)).toThrow(/request\.e is one value too many: more than 10 in all, keys included/);
    expect(() => small.encode({ a: { b: { c: {} } } }, request)).toThrow(/request\.a\.b\.c is nested deeper than 3 levels \(decode limit maxDepth\)/);
    expect(() => small.encode({ a: 1, b: 2, c: 3, d: 4, e: 5 }, request)).toThrow(/request is an object of 5 keys, more than 4 \(decode limit maxMapKeys\)/);
  });

  it('a cycle is named as one, wherever it is', () => {
    const node: Record<string, unknown> = { name: 'n', list: [] };
    (node['list'] as unknown[]).push(new Map([['up', node]]));
    expect(refusal(node).rawMessage).toBe(
      'cannot encode the request of s.S.m as msgpack: request.list[0].get("up") refers back to request (a circular reference; send a copy without it)',
    );
  });

  it('what it carries as it is', () => {
    const value = {
      big: [2n ** 70n, -(2n ** 63n), 2n ** 64n - 1n],
      odd: [Number.NaN, Number.POSITIVE_INFINITY],
      at: new Date(5),
      holes: [1, undefined, 3],
      field: undefined,
      f32: new Float32Array([1.5]),
      bytes: Buffer.from('hi'),
      pair: '🚀',
      names: { constructor: 1, prototype: 2, hasOwnProperty: 3 },
    };
    expect(msgpack.decode(Buffer.from(msgpack.encode(value, request)), request)).toEqual(value);
  });
});

describe('the json sender counts as its decoder counts', () => {
  it('a response it cannot carry is INTERNAL (a stream chunk surfaced INVALID_ARGUMENT, blaming the caller)', () => {
    const json = createJsonSerializer({}) as Serializer;
    expect(() => json.encode({ s: new Set() }, { ...request, kind: 'response' })).toThrow(
      expect.objectContaining({ code: RpcCode.INTERNAL, rawMessage: 'the json serializer cannot carry response.s: it is a Set (JSON makes it {})' }),
    );
    expect(() => json.encode({ s: new Set() }, request)).toThrow(expect.objectContaining({ code: RpcCode.INVALID_ARGUMENT }));
  });

  it('refuses an AbortSignal in a request, pointing at the call options', () => {
    const json = createJsonSerializer({}) as Serializer;
    expect(() => json.encode({ signal: AbortSignal.timeout(100) }, request)).toThrow(
      expect.objectContaining({
        code: RpcCode.INVALID_ARGUMENT,
        rawMessage:
          'the json serializer cannot carry request.signal: it is an EventTarget such as an AbortSignal (JSON makes it {}; a signal goes in the call options: { signal })',
      }),
    );
  });

  it('with dates declared, an invalid Date is refused (JSON.stringify made it null)', () => {
    const json = createJsonSerializer({ dates: true }) as Serializer;
    expect(json.decode(Buffer.from(json.encode({ at: new Date(5) }, request)), request)).toEqual({ at: '1970-01-01T00:00:00.005Z' });
    expect(() => json.encode({ at: new Date(Number.NaN) }, request)).toThrow(
      /the json serializer cannot carry request\.at: it is an invalid Date \(JSON makes it null\)/,
    );
  });

  it('refuses past maxElements (keys included) and maxMapKeys what the decoder would refuse', () => {
    const ten = createJsonSerializer({ maxElements: 10 }) as Serializer;
    const roomy = createJsonSerializer({}) as Serializer;
    const four = { a: 1, b: 2, c: 3, d: 4 };
    expect(ten.decode(Buffer.from(ten.encode(four, request)), request)).toEqual(four);
    const five = { a: 1, b: 2, c: 3, d: 4, e: 5 };
    expect(() => ten.decode(Buffer.from(roomy.encode(five, request)), request)).toThrow(/more than 10 values \(decode limit maxElements/);
    expect(() => ten.encode(five, request)).toThrow(/request\.e: it is one value too many: more than 10 in all, keys included/);
    const keys = createJsonSerializer({ maxMapKeys: 4 }) as Serializer;
    expect(() => keys.decode(Buffer.from(roomy.encode(five, request)), request)).toThrow(/a map of 5 keys, more than 4/);
    expect(() => keys.encode({ x: five }, request)).toThrow(/request\.x: it is an object of 5 keys, more than 4 \(decode limit maxMapKeys\)/);
  });

  it('any value: either refused with a path, or decoded to the same value (-0 as 0, undefined fields left out)', () => {
    const json = createJsonSerializer({}) as Serializer;
    fc.assert(
      fc.property(
        fc.anything({
          maxDepth: 4,
          withBigInt: true,
          withDate: true,
          withMap: true,
          withSet: true,
          withSparseArray: true,
          withTypedArray: true,
          withUnicodeString: true,
          withNullPrototype: true,
        }),
        (sent) => {
          let bytes: Uint8Array;
          try {
            bytes = json.encode(sent, request);
          } catch (error) {
            expect((error as RpcError).code).toBe(RpcCode.INVALID_ARGUMENT);
            expect((error as RpcError).rawMessage).toMatch(/^the json serializer cannot carry request/);
            return;
          }
          expect(json.decode(Buffer.from(bytes), request)).toEqual(delivered(sent));
        },
      ),
      { numRuns: 2000, seed: 11 },
    );
  });
});
