import { describe, expect, it } from 'vitest';
import { decodeRequestHead, encodeMeta, encodeRoute, RequestHeadDecoder } from '../../../src/transport/envelope.js';
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

  it('decodes repeated routes and keys on one connection the same as fresh ones, whatever the order', () => {
    const heads = new RequestHeadDecoder();
    const routes = [encodeRoute('a.Svc', '1', '', 'm'), encodeRoute('b.Svc', '1', '', 'm'), encodeRoute('a.Svc', '1', '', 'n')];
    // 40 distinct keys: more than the decoder remembers, so some are decoded without the cache.
    const keys = Array.from({ length: 40 }, (_, i) => `key-${i}`);
    for (let call = 0; call < 200; call++) {
      const meta = { [keys[call % keys.length]!]: `v${call}`, [keys[(call * 7) % keys.length]!]: 'é✓ twelve+ bytes', 'shuttle-timeout': String(call) };
      const encoded = body(routes[call % routes.length]!, encodeMeta(meta), Buffer.from([call & 0xff]));
      const { head, payloadOffset } = heads.decode(encoded);
      expect({ ...head, meta: { ...head.meta } }).toEqual({ ...decodeRequestHead(encoded).head, meta });
      expect(encoded[payloadOffset]).toBe(call & 0xff);
    }
  });

  it('still checks UTF-8 in a key the same length as a remembered one, and in short values', () => {
    const heads = new RequestHeadDecoder();
    const route = encodeRoute('s', '', '', 'm');
    heads.decode(body(route, encodeMeta({ ab: 'x' })));
    // A key of two bytes that are not UTF-8, after the two-byte key "ab" was remembered.
    expect(() => heads.decode(body(route, Buffer.from([1, 2, 0xc3, 0x28, 0, 1, 0x78])))).toThrow(/metadata key is not valid UTF-8/);
    expect(() => heads.decode(body(route, Buffer.from([1, 2, 0x61, 0x62, 0, 2, 0xc3, 0x28])))).toThrow(/metadata "ab" is not valid UTF-8/);
    expect(() => heads.decode(body(route, Buffer.from([1, 2, 0x61, 0x62, 0, 9, 0x78])))).toThrow(/truncated while reading metadata "ab"/);
    expect(heads.decode(body(route, encodeMeta({ ab: 'é' }))).head.meta).toEqual({ ab: 'é' });
  });
});
