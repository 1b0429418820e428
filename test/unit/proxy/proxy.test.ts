import { describe, expect, it } from 'vitest';
import { RpcCode, type RpcError } from '../../../src/errors/errors.js';
import { createProxy, type CallMode, type CallOptions } from '../../../src/proxy/proxy.js';
import { ClientStream } from '../../../src/transport/client-stream.js';

interface Api {
  hello(name: string): Promise<string>;
  generate(prompt: string): AsyncGenerator<string, { tokens: number }>;
}

/** A caller that records calls and answers unary with a string, streams with two chunks. */
function recordingCaller() {
  const calls: Array<[string, unknown, CallOptions | undefined, CallMode]> = [];
  const caller = async (method: string, request: unknown, options: CallOptions | undefined, mode: CallMode) => {
    calls.push([method, request, options, mode]);
    if (mode === 'unary') return `hi ${String(request)}`;
    const stream = new ClientStream<string>(
      () => {},
      () => {},
    );
    stream.push('a', 1);
    stream.push('b', 1);
    stream.end({ tokens: 2 });
    return stream;
  };
  return { calls, caller };
}

describe('createProxy', () => {
  it('turns property access into calls carrying the method, request and options', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createProxy<Api>('svc', caller);
    const options = { timeoutMs: 5 };
    expect(await proxy.hello('ada', options)).toBe('hi ada');
    expect(calls).toEqual([['hello', 'ada', options, 'unary']]);
    expect(proxy.hello).toBe(proxy.hello);
  });

  it('is not thenable, so it can be returned from async functions', async () => {
    const proxy = createProxy<Api>('svc', recordingCaller().caller);
    expect((proxy as unknown as { then?: unknown }).then).toBeUndefined();
    const resolved = await (async () => proxy)();
    expect(resolved).toBe(proxy);
    expect(JSON.stringify(proxy)).toBe('{}');
    // No service may export the reserved names, so none of them makes a call.
    for (const name of ['then', 'toJSON', 'constructor']) expect((proxy as unknown as Record<string, unknown>)[name], name).toBeUndefined();
  });

  it('turns into a string without calling anything remote (a template literal would call toString and valueOf)', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createProxy<Api>('svc', caller);
    expect(`${proxy}`).toBe('[shuttle-rpc proxy of svc]');
    expect(String(proxy)).toBe('[shuttle-rpc proxy of svc]');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(calls).toEqual([]);
  });

  it('cannot be assigned to', () => {
    const proxy = createProxy<Api>('svc', recordingCaller().caller);
    expect(() => {
      (proxy as unknown as Record<string, unknown>)['hello'] = 1;
    }).toThrow(TypeError);
  });
});

describe('RpcCall', () => {
  it('starts a unary call in a microtask even if nobody awaits it yet', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createProxy<Api>('svc', caller);
    const pending = proxy.hello('later');
    expect(calls).toEqual([]);
    await Promise.resolve();
    expect(calls.map((call) => call[3])).toEqual(['unary']);
    expect(await pending).toBe('hi later');
    expect(calls).toHaveLength(1);
  });

  it('starts a stream when iterated in the same tick, with the trailer after the end', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createProxy<Api>('svc', caller);
    const call = proxy.generate('p');
    const chunks: string[] = [];
    for await (const chunk of call) chunks.push(chunk);
    expect(chunks).toEqual(['a', 'b']);
    expect(await call.trailer).toEqual({ tokens: 2 });
    expect(calls.map((entry) => entry[3])).toEqual(['stream']);
  });

  it('explains how to fix iterating a call that already started as unary', async () => {
    const proxy = createProxy<Api>('svc', recordingCaller().caller);
    const call = proxy.generate('p');
    await Promise.resolve();
    let error: RpcError | undefined;
    try {
      for await (const _chunk of call) break;
    } catch (caught) {
      error = caught as RpcError;
    }
    expect(error?.code).toBe(RpcCode.FAILED_PRECONDITION);
    expect(error?.message).toMatch(/svc\.generate already started as a unary call: iterate a streaming call in the same tick/);
    await (call as unknown as Promise<unknown>).catch(() => {});
  });

  it('refuses to be awaited once iterated', async () => {
    const proxy = createProxy<Api>('svc', recordingCaller().caller);
    const call = proxy.generate('p');
    const iterator = call[Symbol.asyncIterator]();
    await expect(call as unknown as Promise<unknown>).rejects.toThrow(/is being iterated as a stream; it cannot also be awaited/);
    await iterator.return?.();
  });

  it('starts a stream when it is iterated and the unary calls of the tick after, in the order they were made', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createProxy<Api>('svc', caller);
    const first = proxy.hello('1');
    const streamed = proxy.generate('2');
    const third = proxy.hello('3');
    const chunks: string[] = [];
    for await (const chunk of streamed) chunks.push(chunk);
    expect(await Promise.all([first, third])).toEqual(['hi 1', 'hi 3']);
    expect(chunks).toEqual(['a', 'b']);
    expect(calls.map((call) => `${String(call[1])} ${call[3]}`)).toEqual(['2 stream', '1 unary', '3 unary']);
  });

  it('lets a call made while others start (by a filter, say) still be iterated in its own tick', async () => {
    const { calls, caller } = recordingCaller();
    let inner: AsyncIterable<string> | undefined;
    const proxy = createProxy<Api>('svc', (method, request, options, mode) => {
      // The outer call's start makes a streaming call, iterated after this returns.
      if (request === 'outer') inner = proxy.generate('inner');
      return caller(method, request, options, mode);
    });
    const outer = proxy.hello('outer');
    await Promise.resolve();
    const chunks: string[] = [];
    for await (const chunk of inner!) chunks.push(chunk);
    expect(await outer).toBe('hi outer');
    expect(chunks).toEqual(['a', 'b']);
    expect(calls.map((call) => `${String(call[1])} ${call[3]}`)).toEqual(['outer unary', 'inner stream']);
  });

  it('rejects the call, and starts the others, when starting one throws', async () => {
    const proxy = createProxy<Api>('svc', (method, request) => {
      if (request === 'bad') throw new TypeError('caller bug');
      return Promise.resolve(`${method} ${String(request)}`);
    });
    const bad = proxy.hello('bad');
    const good = proxy.hello('good');
    await expect(bad).rejects.toThrow('caller bug');
    expect(await good).toBe('hello good');
  });

  it('says how to iterate when its iterator method is called on something else', async () => {
    const proxy = createProxy<Api>('svc', recordingCaller().caller);
    const call = proxy.generate('x');
    const detached = call[Symbol.asyncIterator];
    expect(() => detached.call(undefined as never)).toThrow(/iterate a proxy call itself/);
    // The call itself is untouched: it still starts (here as unary, since nobody iterated it).
    await expect(call as unknown as Promise<unknown>).resolves.toBe('hi x');
  });
});
