import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import { checkMsgpack } from '../../../src/serializer/msgpack-guard.js';
import type { Serializer } from '../../../src/serializer/serializer.js';

const target = { service: 'svc', method: 'm', kind: 'request' } as const;
const msgpack = createMsgpackSerializer({}) as Serializer;
const json = createJsonSerializer({}) as Serializer;

/** A msgpack array32 of `count` copies of `element`. */
function array(element: number[], count: number): Buffer {
  const out = Buffer.alloc(5 + element.length * count);
  out[0] = 0xdd;
  out.writeUInt32BE(count, 1);
  for (let i = 0; i < count; i++) out.set(element, 5 + i * element.length);
  return out;
}

function refusal(run: () => unknown): RpcError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RpcError);
    return error as RpcError;
  }
  throw new Error('expected a refusal');
}

describe('decode limits (msgpack)', () => {
  it('refuses 8 MiB of empty maps before building anything, naming the limit', () => {
    const bytes = array([0x80], 8 * 1024 * 1024 - 5);
    const started = performance.now();
    const error = refusal(() => msgpack.decode(bytes, target));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(error.message).toMatch(/decode limit (maxDecodedBytes|maxDecodeRatio|maxElements)/);
  });

  it.each([
    ['empty arrays', [0x90]],
    ['empty maps', [0x80]],
    ['one-element arrays', [0x91, 0x01]],
    ['empty binaries', [0xc4, 0x00]],
  ])('keeps %s within a fixed multiple of the wire size', (_, element) => {
    // 200 KiB of input: small enough for every limit but the ratio.
    const bytes = array(element, Math.floor((200 * 1024) / element.length));
    const error = refusal(() => msgpack.decode(bytes, target));
    expect(error.message).toMatch(/maxDecodeRatio/);
  });

  it('accepts ordinary payloads whose decoded size is a small multiple of the wire', () => {
    const floats = array([0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], 100_000);
    expect((msgpack.decode(floats, target) as number[]).length).toBe(100_000);
    const records = msgpack.encode(
      Array.from({ length: 10_000 }, (_, i) => ({ id: i, name: `user-${i}`, score: i / 3 })),
      target,
    );
    expect((msgpack.decode(records, target) as unknown[]).length).toBe(10_000);
    const embedding = msgpack.encode({ vector: new Float32Array(1_000_000) }, target);
    expect((msgpack.decode(embedding, target) as { vector: Float32Array }).vector.length).toBe(1_000_000);
  });

  it('refuses a map with more keys than maxMapKeys, and takes a raised limit from the options', () => {
    const many = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    const roomy = createMsgpackSerializer({ maxMapKeys: 32_768 }) as Serializer;
    const bytes = roomy.encode(many, target);
    expect(refusal(() => msgpack.decode(bytes, target)).message).toMatch(/a map of 20000 keys, more than 16384 \(decode limit maxMapKeys/);
    // A sender with the same limits refuses it before sending.
    expect(refusal(() => msgpack.encode(many, target)).message).toMatch(/request is an object of 20000 keys, more than 16384 \(decode limit maxMapKeys/);
    expect(Object.keys(roomy.decode(bytes, target) as object)).toHaveLength(20_000);
  });

  it('refuses a huge BigInt and more values than maxElements', () => {
    const big = Buffer.alloc(6 + 4096, 0x7f);
    big[0] = 0xc9;
    big.writeUInt32BE(4096, 1);
    big[5] = 0x42;
    expect(refusal(() => msgpack.decode(big, target)).message).toMatch(/an integer of 4096 bytes, more than 1024 \(decode limit maxBigIntBytes/);
    const small = createMsgpackSerializer({ maxElements: 1000 }) as Serializer;
    expect(refusal(() => small.decode(array([0x01], 1000), target)).message).toMatch(/more than 1000 values \(decode limit maxElements/);
  });

  it('check() returns the estimate that decode() then honours without a second walk', () => {
    const bytes = msgpack.encode({ prompt: 'x'.repeat(1000), maxTokens: 16 }, target);
    const cost = msgpack.check!(bytes, target);
    expect(cost).toBeGreaterThan(1000);
    expect(cost).toBeLessThan(2000);
    expect(checkMsgpack(bytes)).toBe(cost);
    expect(msgpack.decode(bytes, target)).toEqual({ prompt: 'x'.repeat(1000), maxTokens: 16 });
  });

  it('refuses unknown option keys and bad limits by name', () => {
    expect(() => createMsgpackSerializer({ maxDecodedByte: 1 })).toThrow(/maxDecodedByte/);
    expect(() => createMsgpackSerializer({ maxDepth: 0 })).toThrow(/maxDepth: 0/);
  });
});

describe('decode limits (json)', () => {
  const text = (value: string): Uint8Array => new TextEncoder().encode(value);

  it('refuses text that would decode to more than a fixed multiple of its size', () => {
    const objects = text(`[${'{},'.repeat(1_000_000)}{}]`);
    const error = refusal(() => json.decode(objects, target));
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(error.message).toMatch(/decode limit maxDecodedBytes/);
    const strict = createJsonSerializer({ maxDecodeRatio: 8 }) as Serializer;
    expect(refusal(() => strict.decode(text(`[${'{},'.repeat(200_000)}{}]`), target)).message).toMatch(/decode limit maxDecodeRatio/);
    expect((strict.decode(text(JSON.stringify(Array.from({ length: 50_000 }, (_, i) => i * 1.5))), target) as number[]).length).toBe(50_000);
  });

  it('refuses an object with too many keys and too deep a text', () => {
    const keys = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":1`).join(',')}}`;
    expect(refusal(() => json.decode(text(keys), target)).message).toMatch(/maxMapKeys/);
    expect(refusal(() => json.decode(text('['.repeat(65) + ']'.repeat(65)), target)).message).toMatch(/nested deeper than 64 levels/);
  });

  it('is not fooled by brackets and colons inside strings', () => {
    const tricky = JSON.stringify({ a: '{[:]}'.repeat(10_000), b: ['"\\":', 1, true, null, -1.5e3] });
    expect(json.decode(text(tricky), target)).toEqual(JSON.parse(tricky));
  });
});
