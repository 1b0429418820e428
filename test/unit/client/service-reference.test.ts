import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { monotonicNow } from '../../../src/common/clock.js';
import { createContextValues } from '../../../src/call/context-values.js';
import { runInCallScope } from '../../../src/call/call-scope.js';
import type { CallOptions } from '../../../src/proxy/proxy.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import type { Filter } from '../../../src/filter/filter.js';
import type { LoadSnapshot } from '../../../src/registry/registry.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { rejection } from '../../helpers/wait.js';
import { deferred, referenceHarness, type ReferenceHarness } from './reference-harness.js';
import { ClientStream } from '../../../src/transport/client-stream.js';
import { dependantSignals } from '../../helpers/signals.js';

/*
 * What a ServiceReference decides before any provider is involved: the call's options, its
 * deadline and cancellation, what the consumer filters may change, and why there is nobody
 * to call.
 */
const MAX_TIMER_MS = 2_147_483_647;

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(RpcError);
  return error as RpcError;
}

/** Nothing reached the cluster strategy or a connection. */
function expectNothingSent(h: ReferenceHarness): void {
  expect(h.clusterCalls).toEqual([]);
  expect(h.transport.connects).toEqual([]);
}

describe('ServiceReference: call options', () => {
  it('refuses options that are not an object, as a rejection and never a throw', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    for (const [options, got] of [
      [null, 'null'],
      [5, 'number'],
      ['fast', 'string'],
      [true, 'boolean'],
    ] as const) {
      let pending: Promise<unknown> | undefined;
      expect(() => (pending = h.reference.call('echo', 1, options as unknown as CallOptions))).not.toThrow();
      const error = await failure(pending!);
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.rawMessage).toBe(`call options of test.Echo.echo must be an object, got ${got}`);
    }
    expectNothingSent(h);
  });

  it('names an unknown option and lists the known ones', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const error = await failure(h.reference.call('echo', 1, { timeout: 100 } as CallOptions));
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.message).toContain(
      'unknown option call options of test.Echo.echo.timeout (known: timeoutMs, signal, metadata, oneWay, routingKey, waitForReady)',
    );
    expectNothingSent(h);
  });

  it('refuses an AbortSignal (or any class instance) given as the options, where it would be ignored', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const error = await failure(h.reference.call('echo', 1, AbortSignal.timeout(1000) as unknown as CallOptions));
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.message).toContain(
      'call options of test.Echo.echo must be a plain object of options (known: timeoutMs, signal, metadata, oneWay, routingKey, waitForReady), got an AbortSignal; pass a signal as { signal }',
    );
    const map = await failure(h.reference.call('echo', 1, new Map([['timeoutMs', 5]]) as unknown as CallOptions));
    expect(map.message).toContain(
      'call options of test.Echo.echo must be a plain object of options (known: timeoutMs, signal, metadata, oneWay, routingKey, waitForReady), got a Map',
    );
    expectNothingSent(h);
    // Object literals, with or without a prototype, are options.
    await expect(h.reference.call('echo', 'a', Object.assign(Object.create(null), { timeoutMs: 1000 }))).resolves.toBe('a');
  });

  it('takes a timeoutMs from 1 to the largest timer and nothing else, saying what it got', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    for (const timeoutMs of [0, -5, 1.5, MAX_TIMER_MS + 1, Number.NaN, Number.POSITIVE_INFINITY, '100']) {
      const error = await failure(h.reference.call('echo', 1, { timeoutMs } as CallOptions));
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      // A string is shown quoted: `got 100` would read as a valid value.
      const shown = typeof timeoutMs === 'string' ? `"${timeoutMs}"` : String(timeoutMs);
      expect(error.rawMessage).toBe(`timeoutMs of test.Echo.echo must be an integer from 1 to ${MAX_TIMER_MS}, got ${shown}`);
    }
    expectNothingSent(h);
    await expect(h.reference.call('echo', 'a', { timeoutMs: 1000 })).resolves.toBe('a');
    await expect(h.reference.call('echo', 'b', { timeoutMs: MAX_TIMER_MS })).resolves.toBe('b');
  });

  it('checks signal, metadata, oneWay and routingKey, naming the method and what is allowed', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const cases: Array<[unknown, string]> = [
      [{ signal: { aborted: false } }, 'signal of test.Echo.echo must be an AbortSignal'],
      [{ metadata: null }, 'metadata of test.Echo.echo must be an object of strings'],
      [{ metadata: 'trace=1' }, 'metadata of test.Echo.echo must be an object of strings'],
      [{ oneWay: 'yes' }, 'oneWay of test.Echo.echo must be true or false'],
      [{ routingKey: 42 }, 'routingKey of test.Echo.echo must be a string'],
    ];
    for (const [options, message] of cases) {
      const error = await failure(h.reference.call('echo', 1, options as CallOptions));
      expect(error.code, message).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.rawMessage).toBe(message);
    }
    expectNothingSent(h);
  });

  it('refuses a one-way streaming call', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const error = await failure(h.reference.call('count', 3, { oneWay: true }, 'stream'));
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.rawMessage).toBe('test.Echo.count: a streaming call cannot be one-way');
    expectNothingSent(h);
  });

  it('carries valid options onto the invocation the transport gets', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const controller = new AbortController();
    await h.reference.call('write', { text: 'x' }, { signal: controller.signal, metadata: { tenant: 'a' }, oneWay: true, routingKey: 'key' });
    const sent = h.transport.connection('10.0.0.1:1')!.sent[0]!;
    expect(sent).toMatchObject({
      service: 'test.Echo',
      version: '1.0.0',
      group: '',
      method: 'write',
      request: { text: 'x' },
      metadata: { tenant: 'a' },
      oneWay: true,
      stream: false,
      routingKey: 'key',
    });
    expect(sent.signal).toBe(controller.signal);
  });
});

describe('ServiceReference: before sending', () => {
  it('fails UNAVAILABLE, never sent, once its client is closed', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    h.close();
    const error = await failure(h.reference.call('echo', 1, undefined));
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.rawMessage).toBe('client is closed');
    expect(error.details?.['neverSent']).toBe(true);
    expectNothingSent(h);
  });

  it('fails CANCELLED with the abort reason when the signal has already fired', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const reason = new Error('user left');
    const error = await failure(h.reference.call('echo', 1, { signal: AbortSignal.abort(reason) }));
    expect(error.code).toBe(RpcCode.CANCELLED);
    expect(error.rawMessage).toBe('test.Echo.echo was cancelled before it was sent');
    expect(error.cause).toBe(reason);
    expectNothingSent(h);
  });

  it('makes the first call wait for the directory’s first snapshot', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    expect(h.directory.isReady).toBe(false);
    await expect(h.reference.call('echo', 'first', undefined)).resolves.toBe('first');
    expect(h.directory.isReady).toBe(true);
  });
});

describe('ServiceReference: deadline', () => {
  const sentDeadline = (h: ReferenceHarness): number | undefined => h.transport.connection('10.0.0.1:1')!.sent.at(-1)!.deadline;

  it('is now plus the reference’s timeout, or the call’s own timeoutMs', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    let before = monotonicNow();
    await h.reference.call('echo', 1, undefined);
    expect(sentDeadline(h)).toBeGreaterThanOrEqual(before + 30_000);
    expect(sentDeadline(h)).toBeLessThanOrEqual(monotonicNow() + 30_000);
    before = monotonicNow();
    await h.reference.call('echo', 1, { timeoutMs: 250 });
    expect(sentDeadline(h)).toBeGreaterThanOrEqual(before + 250);
    expect(sentDeadline(h)).toBeLessThanOrEqual(monotonicNow() + 250);
  });

  it('inside a provider call, inherits the remaining deadline when it is sooner, never a later one', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const soon = monotonicNow() + 1000;
    await runInCallScope({ deadline: soon, signal: new AbortController().signal }, () => h.reference.call('echo', 1, undefined));
    expect(sentDeadline(h)).toBe(soon);
    const before = monotonicNow();
    await runInCallScope({ deadline: monotonicNow() + 60_000, signal: new AbortController().signal }, () => h.reference.call('echo', 1, { timeoutMs: 500 }));
    expect(sentDeadline(h)).toBeLessThanOrEqual(monotonicNow() + 500);
    expect(sentDeadline(h)).toBeGreaterThanOrEqual(before + 500);
    await runInCallScope({ deadline: undefined, signal: new AbortController().signal }, () => h.reference.call('echo', 1, { timeoutMs: 500 }));
    expect(sentDeadline(h)).toBeLessThanOrEqual(monotonicNow() + 500);
  });

  it('inside a provider call, is cancelled with the call it serves as well as by its own signal', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const served = new AbortController();
    await runInCallScope({ deadline: undefined, signal: served.signal }, () => h.reference.call('echo', 1, undefined));
    const inherited = h.transport.connection('10.0.0.1:1')!.sent[0]!.signal!;
    expect(inherited.aborted).toBe(false);
    served.abort();
    expect(inherited.aborted).toBe(true);

    // With a signal of its own, either one cancels it while it runs.
    for (const which of ['served', 'own'] as const) {
      const outer = new AbortController();
      const own = new AbortController();
      const pending = deferred();
      h.transport.connection('10.0.0.1:1')!.answer = () => pending.promise;
      const call = runInCallScope({ deadline: undefined, signal: outer.signal }, () => h.reference.call('echo', 1, { signal: own.signal }));
      await new Promise((resolve) => setImmediate(resolve));
      const both = h.transport.connection('10.0.0.1:1')!.sent.at(-1)!.signal!;
      expect(both.aborted).toBe(false);
      (which === 'served' ? outer : own).abort();
      expect(both.aborted, which).toBe(true);
      pending.resolve(1);
      await call;
    }
  });
});

describe('ServiceReference: a signal kept for the process life', () => {
  it('holds nothing once its calls are over: calls inside a served call and attempts with signals of their own (forking), unary and streams', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      // As forking does: each attempt gets a signal of its own besides the call's.
      invoke: (call) => call.send(call.select()!, { signal: new AbortController().signal }),
    });
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    const streams: ClientStream[] = [];
    connection.openAnswer = () => {
      const stream = new ClientStream(
        () => {},
        () => {},
      );
      streams.push(stream);
      stream.push(1, 8);
      return Promise.resolve(stream);
    };
    const kept = new AbortController();
    for (let i = 0; i < 200; i++) {
      await runInCallScope({ deadline: undefined, signal: new AbortController().signal }, () => h.reference.call('echo', i, { signal: kept.signal }));
      const open = await runInCallScope({ deadline: undefined, signal: new AbortController().signal }, () =>
        h.reference.call('count', i, { signal: kept.signal }, 'stream'),
      );
      (open as ClientStream).end({ count: 1 });
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(getEventListeners(kept.signal, 'abort')).toHaveLength(0);
    expect(dependantSignals(kept.signal)).toBe(0);

    // While a call runs, the kept signal still cancels it.
    const pending = deferred();
    connection.answer = () => pending.promise;
    const call = runInCallScope({ deadline: undefined, signal: new AbortController().signal }, () => h.reference.call('echo', 1, { signal: kept.signal }));
    await new Promise((resolve) => setImmediate(resolve));
    const sent = connection.sent.at(-1)!.signal!;
    expect(getEventListeners(kept.signal, 'abort')).toHaveLength(1);
    kept.abort(new Error('user left'));
    expect(sent.aborted).toBe(true);
    expect((sent.reason as Error).message).toBe('user left');
    pending.resolve(1);
    await call;
  });
});

describe('ServiceReference: consumer filters', () => {
  const filter = (invoke: Filter['invoke']): Filter => ({ name: 'test', order: 0, sides: ['consumer'], invoke });

  it('shows filters the call and sends what they pass on: request, metadata and deadline', async () => {
    const seen: unknown[] = [];
    const deadline = monotonicNow() + 5000;
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      parts: {
        filters: [
          filter((invocation, next) => {
            seen.push(invocation);
            return next({ ...invocation, request: { wrapped: invocation.request }, metadata: { ...invocation.metadata, token: 't' }, deadline });
          }),
        ],
      },
    });
    const controller = new AbortController();
    const result = await h.reference.call('echo', 'hi', { metadata: { trace: '1' }, signal: controller.signal, routingKey: 'key' });
    expect(result).toEqual({ wrapped: 'hi' });
    expect(seen).toEqual([
      expect.objectContaining({
        side: 'consumer',
        service: 'test.Echo',
        version: '1.0.0',
        method: 'echo',
        request: 'hi',
        stream: false,
        metadata: { trace: '1' },
      }),
    ]);
    const sent = h.transport.connection('10.0.0.1:1')!.sent[0]!;
    expect(sent).toMatchObject({ method: 'echo', request: { wrapped: 'hi' }, metadata: { trace: '1', token: 't' }, deadline, routingKey: 'key' });
    // What filters cannot see travels on untouched.
    expect(sent.signal).toBe(controller.signal);
  });

  it('fails INTERNAL, never sent, when a filter passes on an object it did not copy from its argument', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      parts: {
        filters: [
          filter((invocation, next) =>
            next({
              side: 'consumer',
              service: invocation.service,
              version: invocation.version,
              method: invocation.method,
              request: invocation.request,
              stream: false,
              metadata: {},
              deadline: undefined,
              peer: undefined,
              // Fresh values: what the reference set on the call it handed in is not among them.
              values: createContextValues(),
            }),
          ),
        ],
      },
    });
    const error = await failure(h.reference.call('echo', 1, undefined));
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.rawMessage).toBe('a consumer filter of test.Echo passed on an invocation not copied from the one it got');
    expectNothingSent(h);
  });

  it('the call a filter sees is the one sent: a spread copy reaches the transport as it is, with everything filters do not see', async () => {
    const passed: unknown[] = [];
    const controller = new AbortController();
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      parts: {
        filters: [
          filter((invocation, next) => {
            const copy = { ...invocation, metadata: { ...invocation.metadata, k: 'v' } };
            passed.push(copy);
            return next(copy);
          }),
        ],
      },
    });
    await h.reference.call('echo', 1, { signal: controller.signal, routingKey: 'key' });
    const sent = h.transport.connection('10.0.0.1:1')!.sent[0]!;
    expect(sent).toBe(passed[0]);
    expect(sent).toMatchObject({ side: 'consumer', metadata: { k: 'v' }, routingKey: 'key', signal: controller.signal });
  });

  it('fails INTERNAL, never sent, when a filter changes the service or method of the call', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      parts: { filters: [filter((invocation, next) => next({ ...invocation, method: 'other' }))] },
    });
    const error = await failure(h.reference.call('echo', 1, undefined));
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.rawMessage).toMatch(/a consumer filter of test\.Echo\.echo changed the call's service, version, method or mode/);
    expectNothingSent(h);
  });
});

describe('ServiceReference: no provider to call', () => {
  const draining: LoadSnapshot = {
    timestamp: monotonicNow(),
    running: 0,
    waiting: 0,
    waitingUncachedTokens: 0,
    kvUsage: 0,
    tokensPerSecond: 0,
    draining: true,
  };

  async function reason(h: ReferenceHarness): Promise<string> {
    const error = await failure(h.reference.call('echo', 1, undefined));
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.details?.['neverSent']).toBe(true);
    expectNothingSent(h);
    return error.rawMessage;
  }

  it('sends a method only to providers whose records list it, when providers differ (a rolling upgrade)', async () => {
    const old = [{ name: 'echo', stream: false, idempotent: true }];
    const upgraded = [...old, { name: 'write', stream: false, idempotent: false }];
    const h = await referenceHarness({
      providers: [providerRecord(1, { methods: old }), providerRecord(2, { methods: upgraded }), providerRecord(3, { methods: [] })],
    });
    await h.reference.call('write', 1, undefined);
    expect(
      h.picks
        .at(-1)!
        .providers.map((view) => view.instance.port)
        .sort(),
    ).toEqual([2, 3]);
    await h.reference.call('echo', 1, undefined);
    expect(
      h.picks
        .at(-1)!
        .providers.map((view) => view.instance.port)
        .sort(),
    ).toEqual([1, 2, 3]);
    const picks = h.picks.length;
    const clusterCalls = h.clusterCalls.length;
    const only = await referenceHarness({ providers: [providerRecord(1, { methods: old }), providerRecord(2, { methods: upgraded })] });
    const error = await failure(only.reference.call('count', 1, undefined));
    expect(error.code).toBe(RpcCode.UNIMPLEMENTED);
    expect(error.details?.['neverSent']).toBe(true);
    expect(error.rawMessage).toBe('no provider of test.Echo:1.0.0 exports method "count" (none of its 2 providers lists it)');
    expectNothingSent(only);
    expect([h.picks.length, h.clusterCalls.length]).toEqual([picks, clusterCalls]);
  });

  it('keeps the views of each method’s providers while calls alternate between methods (no rebuild per call in a rolling upgrade)', async () => {
    const old = [{ name: 'echo', stream: false, idempotent: true }];
    const upgraded = [...old, { name: 'write', stream: false, idempotent: false }];
    const h = await referenceHarness({ providers: [providerRecord(1, { methods: old }), providerRecord(2, { methods: upgraded })] });
    const seen = new Map<string, Set<unknown>>();
    for (let i = 0; i < 6; i++) {
      for (const method of ['write', 'echo']) {
        await h.reference.call(method, i, undefined);
        const views = h.picks.at(-1)!.providers;
        if (!seen.has(method)) seen.set(method, new Set());
        for (const view of views) seen.get(method)!.add(view);
      }
    }
    // The same view objects every time: one per provider in each method's list.
    expect(seen.get('write')!.size).toBe(1);
    expect(seen.get('echo')!.size).toBe(2);
  });

  it('says none is registered', async () => {
    expect(await reason(await referenceHarness())).toBe('no provider of test.Echo:1.0.0 is registered');
  });

  it('names the group, and leaves out an empty version', async () => {
    expect(await reason(await referenceHarness({ parts: { group: 'canary' } }))).toBe('no provider of test.Echo:1.0.0 (group canary) is registered');
    expect(await reason(await referenceHarness({ parts: { version: '' } }))).toBe('no provider of test.Echo is registered');
  });

  it('names the versions and groups the service is registered under when none is the one asked for', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1, { version: '2.0.0' }), providerRecord(2, { version: '2.0.0' }), providerRecord(3, { version: '1.0.0', group: 'canary' })],
    });
    expect(await reason(h)).toBe('no provider of test.Echo:1.0.0 is registered; test.Echo is registered under version 1.0.0 group canary, version 2.0.0');
  });

  it('counts the draining ones when every provider drains', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2)] });
    await h.registry.reportLoad('10.0.0.1:1', draining);
    await h.registry.reportLoad('10.0.0.1:2', draining);
    expect(await reason(h)).toBe('no provider of test.Echo:1.0.0 is available (2 draining)');
  });

  it('names the protocols the registered providers speak when none speaks the client’s', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1, { protocol: 'grpc' })] });
    expect(await reason(h)).toBe("no provider of test.Echo:1.0.0 speaks this client's transport (tcp); registered providers speak grpc");
  });
});
