import { describe, expect, it } from 'vitest';
import { defineService, serverStream, unary } from '../../../src/decorators/descriptor.js';
import { RpcCode, type RpcError } from '../../../src/errors/errors.js';
import { createDescribedProxy } from '../../../src/proxy/described.js';
import type { CallMode, CallOptions } from '../../../src/proxy/proxy.js';
import { ClientStream } from '../../../src/transport/client-stream.js';

interface Api {
  hello(name: string): Promise<string>;
  generate(prompt: string): AsyncGenerator<string, { tokens: number }>;
}

const Svc = defineService<Api>('test.Svc', { hello: unary, generate: serverStream });

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

describe('createDescribedProxy', () => {
  it('calls a unary method at once, in unary mode, with its request and options', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createDescribedProxy(Svc, caller);
    const options = { timeoutMs: 5 };
    const pending = proxy.hello('ada', options);
    // No microtask of guessing: the caller already has the call.
    expect(calls).toEqual([['hello', 'ada', options, 'unary']]);
    expect(await pending).toBe('hi ada');
  });

  it('opens a stream when it is iterated, even ticks after the call was made', async () => {
    const { calls, caller } = recordingCaller();
    const proxy = createDescribedProxy(Svc, caller);
    const call = proxy.generate('p');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(calls).toEqual([]);
    await expect(call.trailer).rejects.toMatchObject({ code: RpcCode.FAILED_PRECONDITION, message: expect.stringMatching(/once the stream is iterated/) });
    const chunks: string[] = [];
    for await (const chunk of call) chunks.push(chunk);
    expect(chunks).toEqual(['a', 'b']);
    expect(await call.trailer).toEqual({ tokens: 2 });
    expect(calls.map((entry) => entry[3])).toEqual(['stream']);
  });

  it('refuses to iterate a stream twice', async () => {
    const call = createDescribedProxy(Svc, recordingCaller().caller).generate('p');
    for await (const chunk of call) {
      expect(chunk).toBe('a');
      break;
    }
    let error: RpcError | undefined;
    try {
      call[Symbol.asyncIterator]();
    } catch (thrown) {
      error = thrown as RpcError;
    }
    expect(error).toMatchObject({
      code: RpcCode.FAILED_PRECONDITION,
      message: expect.stringMatching(/test\.Svc\.generate: a stream can be iterated only once/),
    });
  });

  it('a stream that fails to open rejects the first next() and the trailer', async () => {
    const failing = async (): Promise<unknown> => {
      throw new Error('no provider');
    };
    const call = createDescribedProxy(Svc, failing).generate('p');
    const iterator = call[Symbol.asyncIterator]();
    await expect(iterator.next()).rejects.toThrow('no provider');
    await expect(call.trailer).rejects.toThrow('no provider');
    expect(await iterator.return!()).toEqual({ done: true, value: undefined });
  });

  it('has exactly the declared methods: not thenable, frozen, no prototype members', async () => {
    const proxy = createDescribedProxy(Svc, recordingCaller().caller) as unknown as Record<string, unknown>;
    expect(Object.keys(proxy).sort()).toEqual(['generate', 'hello']);
    for (const name of ['then', 'toJSON', 'toString', 'constructor', 'other']) expect(proxy[name]).toBeUndefined();
    expect(await (async () => proxy)()).toBe(proxy);
    expect(Object.isFrozen(proxy)).toBe(true);
  });
});

describe('defineService', () => {
  it('makes a frozen descriptor with the kinds of its methods', () => {
    expect(Svc.name).toBe('test.Svc');
    expect({ ...Svc.methods }).toEqual({ hello: { kind: 'unary' }, generate: { kind: 'server-stream' } });
    expect(Object.isFrozen(Svc) && Object.isFrozen(Svc.methods)).toBe(true);
    expect(Svc.methods['constructor']).toBeUndefined();
  });

  it('rejects a bad name, a bad kind and an empty method table, naming them', () => {
    expect(() => defineService('', { a: unary } as never)).toThrow(
      'shuttle-rpc: invalid defineService name: "" (allowed: a non-empty string of at most 255 bytes)',
    );
    expect(() => defineService('s', { a: 'unary' } as never)).toThrow('shuttle-rpc: defineService s.a must be unary or serverStream, got "unary"');
    expect(() => defineService('s', {} as never)).toThrow('shuttle-rpc: defineService s lists no methods');
    expect(() => defineService('s', null as never)).toThrow(/invalid defineService s methods: null/);
  });
});
