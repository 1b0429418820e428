import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcMethod, RpcService } from 'shuttle-rpc';
import type { LoadBalancer } from 'shuttle-rpc/spi';
import { startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { rejection } from '../helpers/wait.js';

/*
 * Callbacks that are told things — the client's onRoute, onAttempt and onStreamBreak, a
 * balancer's observe, a provider's load() — are not awaited: an async one that rejects must
 * not end the process as an unhandled rejection, and one that throws must not fail the call.
 */
interface Api {
  ok(value: unknown): Promise<unknown>;
  fail(): Promise<unknown>;
  count(n: number): AsyncIterable<number>;
}

@RpcService({ name: 'test.Observed' })
class Observed {
  @RpcMethod()
  async ok(value: unknown): Promise<unknown> {
    return value;
  }

  @RpcMethod()
  async fail(): Promise<unknown> {
    throw new Error('handler failed');
  }

  @RpcMethod({ stream: true })
  async *count(n: number): AsyncGenerator<number> {
    for (let i = 0; i < n; i++) yield i;
    throw new Error('stream broke');
  }
}

let pair: TestPair | undefined;
const unhandled: unknown[] = [];
const record = (reason: unknown): void => {
  unhandled.push(reason);
};
afterEach(async () => {
  await pair?.close();
  pair = undefined;
  process.off('unhandledRejection', record);
  unhandled.length = 0;
});

/** Lets pending rejections surface as unhandled (Node reports them after the microtasks drain). */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('async observers that reject', () => {
  it('onRoute, onAttempt and onStreamBreak: no unhandled rejection; the calls are answered', async () => {
    process.on('unhandledRejection', record);
    const told: string[] = [];
    const rejecting = (hook: string) => async (): Promise<void> => {
      told.push(hook);
      throw new Error(`${hook} observer failed`);
    };
    pair = await startTestPair([new Observed()], {
      client: {
        onRoute: rejecting('route'),
        onAttempt: rejecting('attempt'),
        onStreamBreak: rejecting('break'),
        circuitBreaker: false,
        outlierEjection: false,
      },
    });
    const api = pair.client.proxy<Api>('test.Observed');
    expect(await api.ok(1)).toBe(1);
    expect((await rejection(api.fail())).code).toBe(RpcCode.INTERNAL);
    const chunks: number[] = [];
    await rejection(
      (async () => {
        for await (const chunk of api.count(2)) chunks.push(chunk);
      })(),
    );
    expect(chunks).toEqual([0, 1]);
    await settle();
    expect(told).toContain('route');
    expect(told).toContain('attempt');
    expect(told).toContain('break');
    expect(unhandled).toEqual([]);
  });

  it("a balancer's observe: no unhandled rejection", async () => {
    process.on('unhandledRejection', record);
    let observed = 0;
    const balancer: LoadBalancer = {
      name: 'learning',
      select: (providers) => ({ provider: providers[0]!, policy: 'learning', branch: 'pick' }),
      observe: (async () => {
        observed++;
        throw new Error('learning failed');
      }) as unknown as LoadBalancer['observe'],
    };
    pair = await startTestPair([new Observed()], { client: { loadbalance: balancer } });
    expect(await pair.client.proxy<Api>('test.Observed').ok(2)).toBe(2);
    await settle();
    expect(observed).toBe(1);
    expect(unhandled).toEqual([]);
  });

  it("a provider's load() that is async and rejects, or returns an object whose figures cannot be read: no unhandled rejection, no crash", async () => {
    process.on('unhandledRejection', record);
    let calls = 0;
    const trap = (): never => {
      throw new Error('trap');
    };
    const load = (): object => {
      calls++;
      return calls % 2 === 0 ? new Proxy({}, { get: trap, ownKeys: trap, getOwnPropertyDescriptor: trap }) : Promise.reject(new Error('load failed'));
    };
    pair = await startTestPair([new Observed()], { server: { load: load as never, loadIntervalMs: 20, registry: `memory://observers-${process.pid}` } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls).toBeGreaterThan(2);
    expect(await pair.client.proxy<Api>('test.Observed').ok(3)).toBe(3);
    await settle();
    expect(unhandled).toEqual([]);
  });
});
