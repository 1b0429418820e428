import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcMethod, RpcReference, RpcService, defineService, serverStream, unary, type CallContext, type Proxied } from 'shuttle-rpc';
import { startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * A service descriptor on both sides of a real connection: the provider exports the class
 * with it, the consumer's proxy and injected references are built from it, and the kind of
 * every call comes from the descriptor.
 */
interface CounterApi {
  add(request: { a: number; b: number }): Promise<number>;
  count(to: number): AsyncGenerator<number, { counted: number }>;
}

const Counter = defineService<CounterApi>('test.Counter', { add: unary, count: serverStream });

@RpcService(Counter, { version: '1.0.0' })
class CounterImpl {
  stopped = 0;

  @RpcMethod({ idempotent: true })
  async add(request: { a: number; b: number }): Promise<number> {
    return request.a + request.b;
  }

  // No @RpcMethod: the descriptor exports it, as a stream.
  async *count(to: number, ctx: CallContext): AsyncGenerator<number, { counted: number }> {
    try {
      for (let i = 1; i <= to && !ctx.signal.aborted; i++) {
        yield i;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return { counted: to };
    } finally {
      this.stopped++;
    }
  }
}

let pair: TestPair | undefined;
afterEach(async () => {
  if (pair === undefined) return;
  const { server } = pair;
  await pair.close();
  pair = undefined;
  expect(server.connections).toBe(0);
});

async function start(): Promise<{ counter: Proxied<CounterApi>; impl: CounterImpl }> {
  const impl = new CounterImpl();
  pair = await startTestPair([impl]);
  return { counter: pair.client.proxy(Counter, { version: '1.0.0' }), impl };
}

describe('service descriptors end to end', () => {
  it('a unary call and a stream, typed and kinded by the descriptor', async () => {
    const { counter } = await start();
    expect(await counter.add({ a: 2, b: 3 })).toBe(5);
    const call = counter.count(4);
    const seen: number[] = [];
    for await (const n of call) seen.push(n);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(await call.trailer).toEqual({ counted: 4 });
  });

  it('a stream iterated ticks after it was made still opens as a stream (a name-only proxy would have sent it unary)', async () => {
    const { counter } = await start();
    const call = counter.count(2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const seen: number[] = [];
    for await (const n of call) seen.push(n);
    expect(seen).toEqual([1, 2]);

    const byName = pair!.client.proxy<CounterApi>('test.Counter', { version: '1.0.0' });
    const late = byName.count(2);
    const failure = rejection(late as unknown as Promise<unknown>);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(() => late[Symbol.asyncIterator]()).toThrow(/already started as a unary call/);
    expect(await failure).toMatchObject({
      code: RpcCode.FAILED_PRECONDITION,
      message: expect.stringMatching(/is a server-streaming method: iterate the call/),
    });
  });

  it('leaving the loop early stops the provider generator', async () => {
    const { counter, impl } = await start();
    for await (const n of counter.count(10_000)) if (n === 3) break;
    await waitUntil(() => impl.stopped === 1, "the provider's finally block");
  });

  it('the proxy has only the descriptor methods', async () => {
    const { counter } = await start();
    expect(Object.keys(counter).sort()).toEqual(['add', 'count']);
    expect((counter as unknown as Record<string, unknown>)['constructor']).toBeUndefined();
  });

  it('@RpcReference(descriptor) injects a descriptor proxy', async () => {
    await start();
    class Front {
      @RpcReference(Counter, { version: '1.0.0' })
      counter!: Proxied<CounterApi>;
    }
    const front = pair!.client.inject(new Front());
    expect(await front.counter.add({ a: 1, b: 1 })).toBe(2);
    const late = front.counter.count(1);
    await Promise.resolve();
    await Promise.resolve();
    const seen: number[] = [];
    for await (const n of late) seen.push(n);
    expect(seen).toEqual([1]);
  });
});
