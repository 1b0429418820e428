import { describe, expect, it } from 'vitest';
import { decodeRequestHead, encodeMeta, encodeRoute } from '../../../src/transport/envelope.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';

function body(...parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}

describe('request envelope', () => {
  it('round-trips the route, metadata and payload offset', () => {
    const payload = Buffer.from([9, 9, 9]);
    const encoded = body(encodeRoute('inference.LLM', '1.0.0', 'gpu', 'generate'), encodeMeta({ 'shuttle-timeout-ms': '500', trace: 'é✓' }), payload);
    const { head, payloadOffset } = decodeRequestHead(encoded);
    expect(head).toEqual({ service: 'inference.LLM', version: '1.0.0', group: 'gpu', method: 'generate', meta: { 'shuttle-timeout-ms': '500', trace: 'é✓' } });
    expect(encoded.subarray(payloadOffset)).toEqual(payload);
  });

  it('pins the byte layout of the head', () => {
    const encoded = body(encodeRoute('s', 'v', '', 'm'), encodeMeta({ k: 'vv' }));
    expect([...encoded]).toEqual([1, 0x73, 1, 0x76, 0, 1, 0x6d, 1, 1, 0x6b, 0, 2, 0x76, 0x76]);
  });

  it('keeps a "__proto__" metadata key as plain data', () => {
    const encoded = body(encodeRoute('s', '', '', 'm'), encodeMeta({ ['__proto__']: 'polluted' }));
    const { head } = decodeRequestHead(encoded);
    expect(Object.getPrototypeOf(head.meta)).toBe(null);
    // biome-ignore lint/suspicious/noProto: the key an attacker sends, read back as plain data
    expect(head.meta['__proto__']).toBe('polluted');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('answers INVALID_ARGUMENT for a truncated head at every length', () => {
    const full = body(encodeRoute('svc', '1', '', 'method'), encodeMeta({ key: 'value' }));
    for (let length = 0; length < full.length; length++) {
      let error: unknown;
      try {
        decodeRequestHead(full.subarray(0, length));
      } catch (caught) {
        error = caught;
      }
      expect(error, `length ${length}`).toBeInstanceOf(RpcError);
      expect((error as RpcError).code).toBe(RpcCode.INVALID_ARGUMENT);
      expect((error as RpcError).message).toMatch(/truncated while reading/);
    }
  });

  it('answers INVALID_ARGUMENT for names that are not UTF-8', () => {
    expect(() => decodeRequestHead(Buffer.from([2, 0xc3, 0x28, 0, 0, 1, 0x6d, 0]))).toThrow(/service is not valid UTF-8/);
  });

  it('refuses metadata it cannot carry, naming the entry', () => {
    expect(() => encodeMeta({ big: 'x'.repeat(70_000) })).toThrow(/metadata "big" value is 70000 bytes, at most 65535/);
    expect(() => encodeMeta({ n: 5 as unknown as string })).toThrow(/metadata "n" must be a string, got number/);
    expect(() => encodeMeta(Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`k${i}`, ''])))).toThrow(/256 entries, at most 255/);
  });
});
