import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcError, RpcMethod, RpcService } from 'shuttle-rpc';
import type { Filter, FilterInvocation, NextFilter } from 'shuttle-rpc/spi';
import { startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { rejection } from '../helpers/wait.js';

/*
 * Filters are user code with bugs: whatever one does wrong fails the call it touches with an
 * error naming it, and never the process, the connection or the other calls.
 */
interface Api {
  ok(value: unknown): Promise<unknown>;
  bad(value: unknown): Promise<unknown>;
  slow(ms: number): Promise<string>;
}

@RpcService({ name: 'test.Filtered' })
class Filtered {
  /** Runs of `bad`: a filter's mistakes must not run it more often than it was called. */
  badRuns = 0;

  @RpcMethod()
  async ok(value: unknown): Promise<unknown> {
    return value;
  }

  @RpcMethod()
  async bad(value: unknown): Promise<unknown> {
    this.badRuns++;
    return value;
  }

  @RpcMethod()
  async slow(ms: number): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return 'slow';
  }
}

/** A filter that does `wrong` for calls of method `bad` and behaves for the others. */
function onBad(name: string, side: 'consumer' | 'provider', wrong: (invocation: FilterInvocation, next: NextFilter) => Promise<unknown>): Filter {
  return { name, order: 50, sides: [side], invoke: (invocation, next) => (invocation.method === 'bad' ? wrong(invocation, next) : next(invocation)) };
}

let pair: TestPair | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

/**
 * With `filter` on the provider, `bad` fails INTERNAL with a correlation id and none of the
 * provider's text, while a call in flight beside it and the next call on the connection answer.
 */
async function expectOnlyItsCallFails(filter: Filter): Promise<void> {
  pair = await startTestPair([new Filtered()], { server: { filters: [filter] }, client: { timeoutMs: 3000 } });
  const api = pair.client.proxy<Api>('test.Filtered');
  expect(await api.ok('warm')).toBe('warm');
  const slow = api.slow(300);
  const error = await rejection(api.bad(1));
  expect(error.code).toBe(RpcCode.INTERNAL);
  expect(error.message).toMatch(/^\[internal\] test\.Filtered\.bad failed \(correlation id [0-9a-f-]{36}; the provider's log has the detail\)$/);
  expect(await slow).toBe('slow');
  expect(await api.ok('after')).toBe('after');
}

describe('a filter that returns something other than a promise', () => {
  it('on the consumer: fails its call with an error naming the filter; calls started in the same tick go on', async () => {
    const filter = onBad('returns-a-number', 'consumer', (invocation, next) => {
      void next(invocation).catch(() => {});
      return 42 as unknown as Promise<unknown>;
    });
    pair = await startTestPair([new Filtered()], { client: { filters: [filter], timeoutMs: 2000 } });
    const api = pair.client.proxy<Api>('test.Filtered');
    // Made in one tick, so started by one microtask: the bad call must not take the others down.
    const calls = [api.ok(1), api.bad(2), api.ok(3)];
    const [first, bad, third] = await Promise.allSettled(calls);
    expect(first).toEqual({ status: 'fulfilled', value: 1 });
    expect(third).toEqual({ status: 'fulfilled', value: 3 });
    const error = (bad as PromiseRejectedResult).reason as RpcError;
    expect(error).toBeInstanceOf(RpcError);
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toBe(
      '[internal] consumer filter "returns-a-number" of test.Filtered.bad returned number instead of a promise (invoke returns what next returned, or a promise of its own)',
    );
  });

  it('on the provider: fails only its call (INTERNAL with a correlation id); the connection and its other calls go on', async () => {
    await expectOnlyItsCallFails(onBad('returns-undefined', 'provider', () => undefined as unknown as Promise<unknown>));
  });
});

describe('a filter that throws something other than an Error', () => {
  const thrown: Array<[string, () => unknown, string]> = [
    ['a string', () => 'no token', 'threw a string: "no token"'],
    ['undefined', () => undefined, 'threw undefined'],
    ['a Proxy whose every trap throws', () => new Proxy({}, { get: trap, getPrototypeOf: trap, has: trap, ownKeys: trap }), 'threw a non-Error object'],
  ];
  it.each(thrown)('on the consumer, %s: an RpcError naming the filter', async (_name, value, what) => {
    const filter = onBad('throws', 'consumer', () => {
      throw value();
    });
    pair = await startTestPair([new Filtered()], { client: { filters: [filter], timeoutMs: 2000 } });
    const api = pair.client.proxy<Api>('test.Filtered');
    const error = await rejection(api.bad(1));
    expect(error).toBeInstanceOf(RpcError);
    expect(error.message).toBe(`[internal] consumer filter "throws" of test.Filtered.bad ${what}`);
    expect(await api.ok(2)).toBe(2);
  });
});

function trap(): never {
  throw new Error('trap');
}

describe('a consumer filter that holds its call', () => {
  const never = (): Promise<unknown> => new Promise(() => {});

  it('never calling next: the call still ends at its deadline, naming the filters', async () => {
    pair = await startTestPair([new Filtered()], { client: { filters: [onBad('holds', 'consumer', never)], timeoutMs: 5000 } });
    const api = pair.client.proxy<Api>('test.Filtered');
    const started = performance.now();
    const error = await rejection(api.bad(1, { timeoutMs: 200 }));
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(error.message).toBe(
      '[deadline exceeded] test.Filtered.bad did not complete before its deadline; it was still in its consumer filters (holds): none passed it on in time',
    );
    expect(await api.ok(2)).toBe(2);
  });

  it('never calling next: the caller can still cancel it', async () => {
    pair = await startTestPair([new Filtered()], { client: { filters: [onBad('holds', 'consumer', never)], timeoutMs: 60_000 } });
    const api = pair.client.proxy<Api>('test.Filtered');
    const controller = new AbortController();
    const call = rejection(api.bad(1, { signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    const error = await call;
    expect(error.code).toBe(RpcCode.CANCELLED);
    expect(error.message).toBe('[cancelled] test.Filtered.bad was cancelled by the caller');
  });

  it('holding the answer after next: the call still ends at its deadline', async () => {
    const filter = onBad('sits-on-answer', 'consumer', (invocation, next) => next(invocation).then(never));
    pair = await startTestPair([new Filtered()], { client: { filters: [filter], timeoutMs: 5000 } });
    const error = await rejection(pair.client.proxy<Api>('test.Filtered').bad(1, { timeoutMs: 200 }));
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(error.message).toBe(
      '[deadline exceeded] test.Filtered.bad did not complete before its deadline; a consumer filter (sits-on-answer) still held it after passing it on',
    );
  });

  it('a stream never passed on: the reader gets the deadline', async () => {
    pair = await startTestPair([new Filtered()], { client: { filters: [onBad('holds', 'consumer', never)], timeoutMs: 300 } });
    const stream = pair.client.proxy<{ bad(value: unknown): AsyncIterable<unknown> }>('test.Filtered').bad(1);
    const error = await rejection(
      (async () => {
        for await (const _ of stream) break;
      })(),
    );
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
  });
});

describe('a filter that calls next twice', () => {
  const twice = (invocation: FilterInvocation, next: NextFilter): Promise<unknown> => {
    const first = next(invocation);
    return first.then(() => next(invocation));
  };

  it('on the consumer: the second pass fails and the call is sent once', async () => {
    const service = new Filtered();
    pair = await startTestPair([service], { client: { filters: [onBad('retries-itself', 'consumer', twice)], timeoutMs: 2000 } });
    const error = await rejection(pair.client.proxy<Api>('test.Filtered').bad(1));
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toBe(
      '[internal] a consumer filter of test.Filtered.bad (retries-itself) called next a second time; a filter passes a call on at most once',
    );
    expect(service.badRuns).toBe(1);
  });

  it('on the provider: the second pass fails (INTERNAL with a correlation id) and the method runs once', async () => {
    const service = new Filtered();
    pair = await startTestPair([service], { server: { filters: [onBad('retries-itself', 'provider', twice)] }, client: { timeoutMs: 2000 } });
    const error = await rejection(pair.client.proxy<Api>('test.Filtered').bad(1));
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toMatch(/^\[internal\] test\.Filtered\.bad failed \(correlation id /);
    expect(service.badRuns).toBe(1);
  });
});

describe('a consumer filter that rejects with something other than an Error', () => {
  const values: Array<[string, () => unknown, string]> = [
    ['a string', () => 'quota used up', 'quota used up'],
    ['undefined', () => undefined, 'undefined'],
    [
      'a Proxy whose every trap throws',
      () => new Proxy({}, { get: trap, getPrototypeOf: trap, has: trap, ownKeys: trap }),
      '(a thrown object that cannot be shown as text)',
    ],
  ];
  it.each(values)('%s: the caller gets an RpcError it can read, awaited or iterated', async (_name, value, shown) => {
    const filter = onBad('rejects', 'consumer', () => Promise.reject(value()));
    pair = await startTestPair([new Filtered()], { client: { filters: [filter], timeoutMs: 2000 } });
    const api = pair.client.proxy<Api>('test.Filtered');
    const streaming = pair.client.proxy<{ bad(value: unknown): AsyncIterable<unknown> }>('test.Filtered');
    const errors = [
      await rejection(api.bad(1)),
      await rejection(
        (async () => {
          for await (const _ of streaming.bad(1)) break;
        })(),
      ),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(RpcError);
      expect(error.code).toBe(RpcCode.UNKNOWN);
      expect(error.message).toBe(`[unknown] test.Filtered.bad failed with ${shown} (a consumer filter or extension threw something other than an Error)`);
    }
  });
});

describe("a provider filter's admit() that misbehaves", () => {
  const admits: Array<[string, (call: { method: string }) => unknown]> = [
    [
      'throws',
      (call) => {
        if (call.method === 'bad') throw new Error('token store at /srv/secrets unreachable');
        return undefined;
      },
    ],
    ['returns a plain Error', (call) => (call.method === 'bad' ? new Error('refused at /srv/secrets') : undefined)],
    ['returns a string', (call) => (call.method === 'bad' ? 'no' : undefined)],
  ];
  it.each(admits)(
    '%s: only its call fails (INTERNAL with a correlation id, no text of the provider); the connection and its other calls go on',
    async (_name, admit) => {
      await expectOnlyItsCallFails({
        name: 'gate',
        order: 1,
        sides: ['provider'],
        invoke: (invocation, next) => next(invocation),
        admit: admit as Filter['admit'],
      });
    },
  );
});
