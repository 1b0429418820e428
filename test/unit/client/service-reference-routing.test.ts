import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import type { LoadSnapshot, ServiceInstance } from '../../../src/registry/registry.js';
import type { ClusterCandidate } from '../../../src/cluster/cluster.js';
import { ClientStream } from '../../../src/transport/client-stream.js';
import { promptText } from '../../../src/inference/inference.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { rejection } from '../../helpers/wait.js';
import { deferred, referenceHarness } from './reference-harness.js';

/*
 * How a ServiceReference hands a call to its cluster strategy and, through the moves it gives
 * the strategy, to the balancer, the pool's connections and the bookkeeping around each
 * attempt. The strategy and the balancer are fakes that record what they get.
 */
const draining: LoadSnapshot = { timestamp: Date.now(), running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining: true };
const ports = (list: readonly { readonly instance?: ServiceInstance; readonly port?: number }[]): number[] =>
  list.map((item) => item.instance?.port ?? item.port!);

describe('ServiceReference: what the cluster strategy gets', () => {
  it('the eligible providers, the invocation, and whether the method is idempotent or a stream', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2), providerRecord(3)], parts: { retries: 4 } });
    await h.directory.ready();
    await h.registry.reportLoad('10.0.0.1:3', draining);
    await h.reference.call('echo', 'x', undefined);
    await h.reference.call('write', 'y', undefined);
    const [echo, write] = h.clusterCalls;
    expect(ports(echo!.providers)).toEqual([1, 2]);
    expect(echo!.invocation).toMatchObject({ method: 'echo', request: 'x' });
    expect(echo!.idempotent).toBe(true);
    expect(echo!.stream).toBe(false);
    expect(echo!.retries).toBe(4);
    expect(echo!.budget).toBe(h.budget);
    expect(write!.idempotent).toBe(false);
  });

  it('a call is idempotent only when a provider declares that method idempotent', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    await h.reference.call('unlisted', 1, undefined);
    expect(h.clusterCalls[0]!.idempotent).toBe(false);
  });

  it('what a strategy throws becomes a rejected call, never a throw', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1)],
      invoke: () => {
        throw new RpcError(RpcCode.INTERNAL, 'strategy bug');
      },
    });
    // Ready first: the call then reaches the strategy synchronously.
    await h.directory.ready();
    let pending: Promise<unknown> | undefined;
    expect(() => (pending = h.reference.call('echo', 1, undefined))).not.toThrow();
    const error = (await rejection(pending!)) as RpcError;
    expect(error.rawMessage).toBe('strategy bug');
  });
});

describe('ServiceReference: select', () => {
  it('gives the balancer a view per candidate (record, host:port, live stats) and the invocation', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2)] });
    await h.reference.call('echo', 'x', { routingKey: 'prompt' });
    const { providers, invocation } = h.picks[0]!;
    expect(providers.map((view) => view.address).sort()).toEqual(['10.0.0.1:1', '10.0.0.1:2']);
    for (const view of providers) {
      expect(view.instance.port).toBe(Number(view.address.split(':')[1]));
      expect(view.stats).toBe(h.stats.get(view.address));
    }
    expect(invocation).toBe(h.clusterCalls[0]!.invocation);
    expect(invocation.routingKey).toBe('prompt');
  });

  it('routes a chat request by default on its messages as the gateway and engine workers name them (role: content, one a line)', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ];
    await h.reference.call('echo', { messages }, undefined);
    expect(h.picks[0]!.invocation.routingKey).toBe(promptText({ messages }));
    expect(h.picks[0]!.invocation.routingKey).toBe('system: be brief\nuser: hi');
    await h.reference.call('echo', { prompt: 'p', messages }, undefined);
    expect(h.picks[1]!.invocation.routingKey).toBe('p');
    // Whatever the messages hold, the key is the text the gateway and the workers use, and
    // reading it never throws: content that is not a string (null beside tool calls, parts),
    // no role, a role no String() can convert.
    const odd = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [] },
      { role: 'tool', content: [{ type: 'text', text: '20C' }] },
      { content: 'no role' },
      { role: Object.create(null), content: 'odd role' },
      { role: JSON.parse('{"toString":1}'), content: 'odder role' },
    ];
    await h.reference.call('echo', { messages: odd }, undefined);
    expect(h.picks[2]!.invocation.routingKey).toBe(promptText({ messages: odd as never }));
    expect(h.picks[2]!.invocation.routingKey).toBe('user: weather?\nassistant: \ntool: \nundefined: no role\nundefined: odd role\nundefined: odder role');
  });

  it('sends to the provider the balancer picked, over the pool’s connection to it', async () => {
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2)],
      pick: (providers) => ({ provider: providers.find((view) => view.instance.port === 2)!, branch: 'pick' }),
    });
    expect(await h.reference.call('echo', 'to two', undefined)).toBe('to two');
    expect(h.transport.connects.map((made) => `${made.host}:${made.port}`)).toEqual(['10.0.0.1:2']);
    expect(h.transport.connection('10.0.0.1:2')!.sent.map((invocation) => invocation.request)).toEqual(['to two']);
  });

  it('leaves out the providers the strategy excludes, and the balancer is not asked when none is left', async () => {
    const picked: Array<ClusterCandidate | undefined> = [];
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2)],
      invoke: async (call) => {
        const first = call.select()!;
        picked.push(first, call.select(new Set([first])), call.select(new Set(call.providers)));
        return undefined;
      },
    });
    await h.reference.call('echo', 1, undefined);
    expect(picked[0]).toBeDefined();
    expect(picked[1]).toBeDefined();
    expect(picked[1]).not.toBe(picked[0]);
    expect(picked[2]).toBeUndefined();
    expect(h.picks).toHaveLength(2);
    expect(ports(h.picks[1]!.providers)).toEqual([picked[1]!.instance.port]);
    // What the strategy is handed back is the balancer's own view of the provider.
    expect(h.picks[1]!.providers).toContain(picked[1]);
  });

  it('skips a provider whose connection is down while another remains', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2)] });
    h.pool.get('10.0.0.1', 1);
    h.transport.connection('10.0.0.1:1')!.state = 'transient-failure';
    await h.reference.call('echo', 1, undefined);
    expect(ports(h.picks[0]!.providers)).toEqual([2]);
  });

  it('reuses the views while the directory’s snapshot is the same, and rebuilds them when it changes', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    await h.reference.call('echo', 1, undefined);
    await h.reference.call('echo', 2, undefined);
    expect(h.picks[1]!.providers).toBe(h.picks[0]!.providers);
    await h.registry.register(providerRecord(2));
    await h.reference.call('echo', 3, undefined);
    expect(ports(h.picks[2]!.providers).sort()).toEqual([1, 2]);
  });

  it('tells onRoute of every pick with its attempt number, and survives an onRoute that throws', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2)], invoke: async (call) => [call.select(), call.select()] });
    await h.reference.call('echo', 1, undefined);
    expect(h.routes.map((event) => [event.service, event.method, event.attempt, event.decision.policy])).toEqual([
      ['test.Echo', 'echo', 1, 'recording'],
      ['test.Echo', 'echo', 2, 'recording'],
    ]);
    const throwing = await referenceHarness({
      providers: [providerRecord(1)],
      parts: {
        onRoute: () => {
          throw new Error('observer bug');
        },
      },
    });
    await expect(throwing.reference.call('echo', 'still', undefined)).resolves.toBe('still');
  });
});

describe('ServiceReference: send', () => {
  it('counts the call in flight to its provider, with its prompt tokens, until it settles', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const answer = deferred();
    h.pool.get('10.0.0.1', 1);
    h.transport.connection('10.0.0.1:1')!.answer = () => answer.promise;
    const call = h.reference.call('echo', { prompt: 'twelve chars' }, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    const stats = h.stats.get('10.0.0.1:1');
    expect(stats.inFlight).toBe(1);
    // No count from the balancer: about four characters a token of the routing key.
    expect(stats.inFlightTokens).toBe(3);
    answer.resolve('done');
    expect(await call).toBe('done');
    expect(stats.inFlight).toBe(0);
    expect(stats.inFlightTokens).toBe(0);
    // A failed call gives its place back too.
    const failing = deferred();
    h.transport.connection('10.0.0.1:1')!.answer = () => failing.promise;
    const failed = h.reference.call('echo', { prompt: 'twelve chars' }, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    expect(stats.inFlight).toBe(1);
    failing.reject(new RpcError(RpcCode.INTERNAL, 'boom'));
    await rejection(failed);
    expect(stats.inFlight).toBe(0);
    expect(stats.inFlightTokens).toBe(0);
  });

  it('counts the tokens the balancer expects uncached instead, when it says', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)], pick: (providers) => ({ provider: providers[0]!, branch: 'hit', uncachedTokens: 1 }) });
    const answer = deferred();
    h.pool.get('10.0.0.1', 1);
    h.transport.connection('10.0.0.1:1')!.answer = () => answer.promise;
    const call = h.reference.call('echo', { prompt: 'a long prompt, mostly cached' }, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.stats.get('10.0.0.1:1').inFlightTokens).toBe(1);
    answer.resolve(undefined);
    await call;
  });

  it('refuses locally, never sent, a call over maxCallsPerProvider', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)], parts: { maxCallsPerProvider: 1 } });
    const answer = deferred();
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    connection.answer = () => answer.promise;
    const first = h.reference.call('echo', 1, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    const error = (await rejection(h.reference.call('echo', 2, undefined))) as RpcError;
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(error.rawMessage).toBe('this consumer already has 1 calls in flight to 10.0.0.1:1 (maxCallsPerProvider)');
    expect(error.details).toMatchObject({ neverSent: true, local: true });
    expect(connection.sent.map((invocation) => invocation.request)).toEqual([1]);
    answer.resolve('ok');
    await first;
    // Room again once the first has settled.
    await h.reference.call('echo', 3, undefined);
    expect(connection.sent.map((invocation) => invocation.request)).toEqual([1, 3]);
  });

  it('tells a learning balancer how an answered call went, an error answer as failed, and nothing of a call the consumer ended', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    await h.reference.call('echo', 1, undefined);
    expect(h.observed).toHaveLength(1);
    expect(h.observed[0]).toMatchObject({ address: '10.0.0.1:1', invocation: expect.objectContaining({ method: 'echo' }), failed: false });
    expect(h.observed[0]!.firstAnswerMs).toBeGreaterThanOrEqual(0);
    expect(h.observed[0]!.totalMs).toBe(h.observed[0]!.firstAnswerMs);
    h.transport.connection('10.0.0.1:1')!.answer = () => Promise.reject(new RpcError(RpcCode.INTERNAL, 'boom'));
    await rejection(h.reference.call('echo', 2, undefined));
    expect(h.observed).toHaveLength(2);
    expect(h.observed[1]).toMatchObject({ address: '10.0.0.1:1', failed: true });
    h.transport.connection('10.0.0.1:1')!.answer = () => Promise.reject(new RpcError(RpcCode.DEADLINE_EXCEEDED, 'too late'));
    await rejection(h.reference.call('echo', 3, undefined));
    expect(h.observed).toHaveLength(2);
  });

  it('reports every attempt to onAttempt with its provider and outcome code', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    await h.reference.call('echo', 1, undefined);
    h.transport.connection('10.0.0.1:1')!.answer = () => Promise.reject(new RpcError(RpcCode.NOT_FOUND, 'no such thing'));
    await rejection(h.reference.call('echo', 2, undefined));
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.attempts.map((event) => [event.service, event.method, event.provider, event.attempt, event.code])).toEqual([
      ['test.Echo', 'echo', '10.0.0.1:1', 1, RpcCode.OK],
      ['test.Echo', 'echo', '10.0.0.1:1', 1, RpcCode.NOT_FOUND],
    ]);
  });

  it('charges the retry budget for a provider failure, not for a caller error', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const full = h.budget.tokens;
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    connection.answer = () => Promise.reject(new RpcError(RpcCode.INVALID_ARGUMENT, 'bad request'));
    await rejection(h.reference.call('echo', 1, undefined));
    expect(h.budget.tokens).toBe(full);
    connection.answer = () => Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'provider crashed'));
    await rejection(h.reference.call('echo', 1, undefined));
    expect(h.budget.tokens).toBe(full - 1);
  });

  it('combines the strategy’s per-attempt signal with the call’s', async () => {
    const attempt = new AbortController();
    const h = await referenceHarness({ providers: [providerRecord(1)], invoke: (call) => call.send(call.select()!, { signal: attempt.signal }) });
    const own = new AbortController();
    h.pool.get('10.0.0.1', 1);
    const pending = deferred();
    h.transport.connection('10.0.0.1:1')!.answer = () => pending.promise;
    const call = h.reference.call('echo', 1, { signal: own.signal });
    await new Promise((resolve) => setImmediate(resolve));
    const signal = h.transport.connection('10.0.0.1:1')!.sent[0]!.signal!;
    expect(signal.aborted).toBe(false);
    attempt.abort();
    expect(signal.aborted).toBe(true);
    expect(own.signal.aborted).toBe(false);
    pending.resolve(1);
    await call;
  });

  it('opens a stream, and the attempt succeeds only at its first chunk', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const stream = new ClientStream(
      () => {},
      () => {},
    );
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    connection.openAnswer = () => Promise.resolve(stream);
    let opened = false;
    const call = h.reference.call('count', 2, undefined, 'stream').then((value) => ((opened = true), value));
    await new Promise((resolve) => setImmediate(resolve));
    expect(connection.sent[0]).toMatchObject({ method: 'count', stream: true });
    expect(h.clusterCalls[0]!.stream).toBe(true);
    expect(opened).toBe(false);
    stream.push(1, 8);
    expect(await call).toBe(stream);
    stream.end({ count: 1 });
    await stream.trailer;
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.stats.get('10.0.0.1:1').inFlight).toBe(0);
  });

  it('fails the attempt of a stream refused before its first chunk', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const stream = new ClientStream(
      () => {},
      () => {},
    );
    h.pool.get('10.0.0.1', 1);
    h.transport.connection('10.0.0.1:1')!.openAnswer = () => Promise.resolve(stream);
    const call = h.reference.call('count', 2, undefined, 'stream');
    await new Promise((resolve) => setImmediate(resolve));
    stream.fail(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'no slot'));
    const error = (await rejection(call)) as RpcError;
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(h.stats.get('10.0.0.1:1').inFlight).toBe(0);
  });

  it('gives back the in-flight place of a stream that could not be opened', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    h.pool.get('10.0.0.1', 1);
    h.transport.connection('10.0.0.1:1')!.openAnswer = () =>
      Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'connect ECONNREFUSED', { details: { neverSent: true } }));
    const error = (await rejection(h.reference.call('count', 2, undefined, 'stream'))) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.stats.get('10.0.0.1:1').inFlight).toBe(0);
  });
});
