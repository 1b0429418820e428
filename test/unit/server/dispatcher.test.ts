import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { SerializerSet } from '../../../src/serializer/serializer.js';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import { armCallScopes, callScopesArmed, currentCallScope } from '../../../src/call/call-scope.js';
import type { CallContext } from '../../../src/call/call-context.js';
import { Dispatcher } from '../../../src/server/dispatcher.js';
import { RpcMethod, RpcService, defineService, unary } from '../../../src/decorators/decorators.js';
import { EchoService } from '../../fixtures/services.js';

const serializers = new SerializerSet([createMsgpackSerializer({}), createJsonSerializer({})]);
const head = (method: string, service = 'test.Echo', version = '1.0.0') => ({ service, version, group: '', method, meta: {} });

describe('Dispatcher', () => {
  it('resolves decorated methods and runs them with a call context', async () => {
    const echo = new EchoService();
    const dispatcher = new Dispatcher([echo], serializers);
    const resolved = dispatcher.resolve(head('add'));
    expect(resolved).not.toBeInstanceOf(RpcError);
    const signal = new AbortController().signal;
    const result = await (resolved as Exclude<typeof resolved, RpcError>).invoke(
      { a: 2, b: 3 },
      { signal, deadline: undefined, meta: {}, peer: { address: '127.0.0.1', port: 1 } },
    );
    expect(result).toEqual({ sum: 5 });
  });

  it('runs handlers in their call scope, across awaits, once the process has a client, unless scopes are declared off', async () => {
    @RpcService({ name: 'scoped' })
    class Scoped {
      @RpcMethod()
      async deadline(): Promise<number | undefined> {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return currentCallScope()?.deadline;
      }
    }
    const info = { signal: new AbortController().signal, deadline: 12_345, meta: {}, peer: { address: '127.0.0.1', port: 1 } };
    const run = (dispatcher: Dispatcher) =>
      (dispatcher.resolve(head('deadline', 'scoped', '')) as Exclude<ReturnType<Dispatcher['resolve']>, RpcError>).invoke(undefined, info);
    // A provider process without a client follows no scope (it has nothing to propagate to).
    const unarmed = await (dispatcherWithoutClient().resolve(head('peek', 'peeking', '')) as Exclude<ReturnType<Dispatcher['resolve']>, RpcError>).invoke(
      undefined,
      info,
    );
    expect(unarmed).toEqual({ armed: false, syncDeadline: 12_345 });
    armCallScopes(); // what the process's first createClient does
    expect(await run(new Dispatcher([new Scoped()], serializers))).toBe(12_345);
    expect(await run(new Dispatcher([new Scoped()], serializers, [], undefined, false))).toBeUndefined();
  });

  /** A dispatcher of a service that reports, without arming the process, what its handler sees. */
  function dispatcherWithoutClient(): Dispatcher {
    @RpcService({ name: 'peeking', version: '' })
    class Peeking {
      @RpcMethod()
      async peek(_request: unknown, context: CallContext): Promise<{ armed: boolean; syncDeadline: number | undefined }> {
        const syncDeadline = context.deadline;
        await new Promise((resolve) => setTimeout(resolve, 1));
        return { armed: callScopesArmed(), syncDeadline };
      }
    }
    return new Dispatcher([new Peeking()], serializers);
  }

  // The dispatch-security table: every one of these names must miss.
  const forbidden = [
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'isPrototypeOf',
    '__defineGetter__',
    'secret',
    'counts',
    'abortReason',
    '#count',
    '',
  ];
  it.each(forbidden)('answers UNIMPLEMENTED for %j and never runs anything', (name) => {
    const echo = new EchoService();
    const dispatcher = new Dispatcher([echo], serializers);
    const resolved = dispatcher.resolve(head(name));
    expect(resolved).toBeInstanceOf(RpcError);
    expect((resolved as RpcError).code).toBe(RpcCode.UNIMPLEMENTED);
    expect(echo.counts).toEqual({});
  });

  it('answers UNIMPLEMENTED for unknown services and versions, listing what exists', () => {
    const dispatcher = new Dispatcher([new EchoService()], serializers);
    expect((dispatcher.resolve(head('echo', 'nope')) as RpcError).message).toMatch(/service nope is not exported/);
    expect((dispatcher.resolve(head('echo', 'test.Echo', '2.0.0')) as RpcError).message).toMatch(/exported versions in this group: 1\.0\.0/);
    expect((dispatcher.resolve(head('echo', '__proto__')) as RpcError).code).toBe(RpcCode.UNIMPLEMENTED);
  });

  it('serves an unversioned request when exactly one version is exported', () => {
    const dispatcher = new Dispatcher([new EchoService()], serializers);
    expect(dispatcher.resolve(head('echo', 'test.Echo', ''))).not.toBeInstanceOf(RpcError);
  });

  it('refuses undecorated objects, empty services and duplicate exports at start-up', () => {
    expect(() => new Dispatcher([{}], serializers)).toThrow(/services\[0\] \(Object\) is not decorated with @RpcService/);
    class Plain {}
    expect(() => new Dispatcher([new Plain()], serializers)).toThrow(
      'shuttle-rpc: services[0] (Plain) is not decorated with @RpcService (put @RpcService on its class; in plain JavaScript, call RpcService(options)(Plain))',
    );
    @RpcService({ name: 'forgot' })
    class ForgotStream {
      @RpcMethod()
      async *tokens(): AsyncGenerator<number> {
        yield 1;
      }
    }
    expect(() => new Dispatcher([new ForgotStream()], serializers)).toThrow(
      'shuttle-rpc: forgot.tokens is an async generator but is exported as unary, so callers would get {}: add @RpcMethod({ stream: true })',
    );
    const Described = defineService<{ tokens(n: number): Promise<number> }>('described', { tokens: unary });
    @RpcService(Described as never)
    class DescribedWrongly {
      async *tokens(): AsyncGenerator<number> {
        yield 1;
      }
    }
    expect(() => new Dispatcher([new DescribedWrongly()], serializers)).toThrow(
      'shuttle-rpc: described.tokens is an async generator but is exported as unary, so callers would get {}: declare it serverStream in service descriptor described',
    );
    expect(() => new Dispatcher([EchoService as never], serializers)).toThrow(
      'shuttle-rpc: services[0] is the class EchoService itself; pass an instance (new EchoService())',
    );
    @RpcService({ name: 'empty' })
    class Empty {}
    expect(() => new Dispatcher([new Empty()], serializers)).toThrow(/service empty has no @RpcMethod methods/);
    expect(() => new Dispatcher([new EchoService(), new EchoService()], serializers)).toThrow(/exported twice/);
    @RpcService({ name: 'shadowed' })
    class Shadowed {
      @RpcMethod()
      run(): void {}
    }
    const instance = new Shadowed();
    Object.defineProperty(instance, 'run', { value: 42 });
    expect(() => new Dispatcher([instance], serializers)).toThrow(/shadowed\.run is decorated with @RpcMethod but is not a function/);
  });
});
