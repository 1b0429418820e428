import { describe, expect, it } from 'vitest';
import { createProxy, type CallOptions } from '../../../src/proxy/proxy.js';

interface Api {
  hello(name: string): Promise<string>;
}

describe('createProxy', () => {
  it('turns property access into calls carrying the method, request and options', async () => {
    const calls: Array<[string, unknown, CallOptions | undefined]> = [];
    const proxy = createProxy<Api>(async (method, request, options) => {
      calls.push([method, request, options]);
      return `hi ${String(request)}`;
    });
    const options = { timeoutMs: 5 };
    expect(await proxy.hello('ada', options)).toBe('hi ada');
    expect(calls).toEqual([['hello', 'ada', options]]);
    expect(proxy.hello).toBe(proxy.hello);
  });

  it('is not thenable, so it can be returned from async functions', async () => {
    const proxy = createProxy<Api>(async () => 'called');
    expect((proxy as unknown as { then?: unknown }).then).toBeUndefined();
    const resolved = await (async () => proxy)();
    expect(resolved).toBe(proxy);
    expect(JSON.stringify(proxy)).toBe('{}');
  });

  it('cannot be assigned to', () => {
    const proxy = createProxy<Api>(async () => '');
    expect(() => {
      (proxy as unknown as Record<string, unknown>)['hello'] = 1;
    }).toThrow(TypeError);
  });
});
