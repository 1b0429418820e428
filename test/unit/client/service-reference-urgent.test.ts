import { describe, expect, it } from 'vitest';
import { createClient } from '../../../src/client/client.js';
import { singleAttempt } from '../../../src/cluster/cluster.js';
import { createForkingCluster } from '../../../src/cluster/forking.js';
import { ProviderHealth } from '../../../src/cluster/provider-health.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { leastPrefilling } from '../../../src/loadbalance/urgent.js';
import type { ProviderView } from '../../../src/loadbalance/loadbalance.js';
import { ClientStream } from '../../../src/transport/client-stream.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { rejection } from '../../helpers/wait.js';
import { deferred, referenceHarness, type ReferenceHarness } from './reference-harness.js';

/*
 * Urgent calls and the prompts a provider is still computing: a consumer counts, per provider,
 * the prompt tokens of its calls that have had no answer yet, and a call whose priority is at
 * least `urgentPriority` chooses only among the providers where that count is lowest.
 */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const PROMPT = 'p'.repeat(400); // 100 estimated tokens

/**
 * Opens a stream whose first chunk the test sends, answered by `port`'s connection (where the
 * balancer sends it: an urgent call, with `metadata`, goes where nothing is computing).
 */
async function openHeldStream(h: ReferenceHarness, port: number, metadata?: Record<string, string>): Promise<{ stream: ClientStream; call: Promise<unknown> }> {
  const stream = new ClientStream(
    () => {},
    () => {},
  );
  h.pool.get('10.0.0.1', port);
  h.transport.connection(`10.0.0.1:${port}`)!.openAnswer = () => Promise.resolve(stream);
  const call = h.reference.call('generate', { prompt: PROMPT }, { routingKey: PROMPT, ...(metadata === undefined ? {} : { metadata }) }, 'stream');
  await turn();
  expect(h.transport.connection(`10.0.0.1:${port}`)!.sent.at(-1)!.method).toBe('generate');
  return { stream, call };
}

describe('prefill accounting', () => {
  it('counts a stream’s prompt until its first chunk, and a unary call’s until its answer', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const stats = h.stats.get('10.0.0.1:1');
    const { stream, call } = await openHeldStream(h, 1);
    expect(stats.prefillTokens).toBe(100);
    stream.push('token', 8);
    await call;
    expect(stats.prefillTokens).toBe(0);
    expect(stats.inFlight).toBe(1);
    stream.end(undefined);
    await stream.trailer;
    await turn();
    expect(stats).toMatchObject({ inFlight: 0, inFlightTokens: 0, prefillTokens: 0 });

    const answer = deferred();
    h.transport.connection('10.0.0.1:1')!.answer = () => answer.promise;
    const unary = h.reference.call('echo', 'x', { routingKey: PROMPT });
    await turn();
    expect(stats.prefillTokens).toBe(100);
    answer.resolve('x');
    await unary;
    await turn();
    expect(stats.prefillTokens).toBe(0);
  });

  it('gives the count back exactly once however a stream ends: refused before its first chunk, ended empty, or not opened', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    const stats = h.stats.get('10.0.0.1:1');
    const refused = await openHeldStream(h, 1);
    refused.stream.fail(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'no slot'));
    await rejection(refused.call);
    await turn();
    expect(stats.prefillTokens).toBe(0);

    const empty = await openHeldStream(h, 1);
    empty.stream.end(undefined);
    await empty.call;
    await empty.stream.trailer;
    await turn();
    expect(stats.prefillTokens).toBe(0);

    h.transport.connection('10.0.0.1:1')!.openAnswer = () => Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'gone', { details: { neverSent: true } }));
    await rejection(h.reference.call('generate', { prompt: PROMPT }, { routingKey: PROMPT }, 'stream'));
    await turn();
    expect(stats).toMatchObject({ inFlight: 0, prefillTokens: 0 });
  });
});

describe('urgent calls', () => {
  async function twoProvidersOneComputing(urgentPriority?: number): Promise<ReferenceHarness> {
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2)],
      // The balancer's own choice would always be the first candidate, 10.0.0.1:1.
      pick: (providers) => ({ provider: providers[0]!, branch: 'pick' }),
      ...(urgentPriority === undefined ? {} : { parts: { urgentPriority } }),
    });
    await openHeldStream(h, 1);
    expect(h.stats.get('10.0.0.1:1').prefillTokens).toBe(100);
    h.pool.get('10.0.0.1', 2);
    return h;
  }

  it('go only to the providers computing the fewest prompt tokens; other calls see every provider', async () => {
    const h = await twoProvidersOneComputing();
    await h.reference.call('echo', 'urgent', { metadata: { 'shuttle-priority': '5' } });
    expect(h.picks.at(-1)!.providers.map((view) => view.address)).toEqual(['10.0.0.1:2']);
    expect(h.transport.connection('10.0.0.1:2')!.sent.at(-1)!.request).toBe('urgent');
    await h.reference.call('echo', 'normal', { metadata: { 'shuttle-priority': '1' } });
    await h.reference.call('echo', 'unmarked', undefined);
    expect(h.picks.slice(-2).map((pick) => pick.providers.length)).toEqual([2, 2]);
  });

  it('follow the urgentPriority setting: a higher threshold leaves priority 5 alone', async () => {
    const h = await twoProvidersOneComputing(9);
    await h.reference.call('echo', 'high', { metadata: { 'shuttle-priority': '5' } });
    expect(h.picks.at(-1)!.providers).toHaveLength(2);
    await h.reference.call('echo', 'top', { metadata: { 'shuttle-priority': '9' } });
    expect(h.picks.at(-1)!.providers.map((view) => view.address)).toEqual(['10.0.0.1:2']);
  });

  it('see every provider when all compute as much, and ignore a priority that is not one digit', async () => {
    const h = await twoProvidersOneComputing();
    await openHeldStream(h, 2, { 'shuttle-priority': '5' });
    expect(h.stats.get('10.0.0.1:2').prefillTokens).toBe(100);
    await h.reference.call('echo', 'urgent', { metadata: { 'shuttle-priority': '7' } });
    expect(h.picks.at(-1)!.providers).toHaveLength(2);
    const other = await twoProvidersOneComputing();
    await other.reference.call('echo', 'odd', { metadata: { 'shuttle-priority': '55' } });
    expect(other.picks.at(-1)!.providers).toHaveLength(2);
  });
});

describe('the accounting against odd balancers, transports and breakers', () => {
  const clean = (h: ReferenceHarness, port: number): void =>
    expect(h.stats.get(`10.0.0.1:${port}`)).toMatchObject({ inFlight: 0, inFlightTokens: 0, prefillTokens: 0 });

  it('keeps a plugin balancer’s fractional or NaN token estimate to whole tokens, so nothing is left over', async () => {
    const estimates = [0.1, 0.2, 0.3, Number.NaN, -5, Number.POSITIVE_INFINITY];
    let next = 0;
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2)],
      pick: (providers) => ({ provider: providers[0]!, branch: 'pick', uncachedTokens: estimates[next++] }),
    });
    for (let i = 0; i < estimates.length; i++) await h.reference.call('echo', i, { routingKey: PROMPT });
    clean(h, 1);
    await h.reference.call('echo', 'urgent', { metadata: { 'shuttle-priority': '9' } });
    expect(h.picks.at(-1)!.providers).toHaveLength(2);
  });

  it('ends the bookkeeping of a call whose transport throws instead of rejecting, unary or stream', async () => {
    const h = await referenceHarness({ providers: [providerRecord(1)] });
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    connection.answer = () => {
      throw new Error('encode failed synchronously');
    };
    connection.openAnswer = connection.answer as never;
    await expect(h.reference.call('echo', 'x', { routingKey: PROMPT })).rejects.toThrow('encode failed synchronously');
    await expect(h.reference.call('generate', 'x', { routingKey: PROMPT }, 'stream')).rejects.toThrow('encode failed synchronously');
    await turn();
    clean(h, 1);
  });

  it('does not narrow an urgent call to providers already at maxCallsPerProvider', async () => {
    let force: string | undefined;
    const h = await referenceHarness({
      providers: [providerRecord(1), providerRecord(2)],
      pick: (providers) => ({ provider: providers.find((view) => view.address === force) ?? providers[0]!, branch: 'pick' }),
      parts: { maxCallsPerProvider: 2 },
      invoke: (call) => singleAttempt(call),
    });
    // Provider 1 is full (two streams past their first chunk: computing no prompt); provider 2
    // computes a prompt and has room for one more call.
    force = '10.0.0.1:1';
    for (let i = 0; i < 2; i++) {
      const decoding = await openHeldStream(h, 1);
      decoding.stream.push('token', 8);
      await decoding.call;
    }
    force = '10.0.0.1:2';
    await openHeldStream(h, 2);
    force = undefined;
    expect(h.stats.get('10.0.0.1:1')).toMatchObject({ inFlight: 2, prefillTokens: 0 });
    expect(h.stats.get('10.0.0.1:2')).toMatchObject({ inFlight: 1, prefillTokens: 100 });
    const picks = h.picks.length;
    expect(await h.reference.call('echo', 'urgent', { metadata: { 'shuttle-priority': '9' } })).toBe('urgent');
    // One pick, offered only the provider with room: no attempt refused by the limit first.
    expect(h.picks.length - picks).toBe(1);
    expect(h.picks.at(-1)!.providers.map((view) => view.address)).toEqual(['10.0.0.1:2']);
  });

  it('reads the call’s priority once: a hedge started later in a timer does not read the metadata again', async () => {
    let reads = 0;
    const metadata = {} as Record<string, string>;
    Object.defineProperty(metadata, 'shuttle-priority', {
      enumerable: true,
      get: () => {
        if (++reads > 1) throw new Error('metadata read twice');
        return '9';
      },
    });
    const forking = createForkingCluster({ forks: 2, hedgeDelayMs: 1 } as never);
    const h = await referenceHarness({ providers: [providerRecord(1), providerRecord(2), providerRecord(3)], invoke: (call) => forking.invoke(call) });
    for (const port of [1, 2, 3]) {
      h.pool.get('10.0.0.1', port);
      h.transport.connection(`10.0.0.1:${port}`)!.answer = () => new Promise(() => {});
    }
    const uncaught: unknown[] = [];
    const onError = (error: unknown): void => void uncaught.push(error);
    process.prependListener('uncaughtException', onError);
    try {
      const error = await rejection(h.reference.call('echo', 'x', { routingKey: PROMPT, metadata, timeoutMs: 100 }));
      expect((error as RpcError).code).toBe(RpcCode.DEADLINE_EXCEEDED);
    } finally {
      process.removeListener('uncaughtException', onError);
    }
    expect(uncaught).toEqual([]);
    expect(h.picks.length).toBeGreaterThanOrEqual(2);
  });

  it('cancels a stream that opens after its breaker probe timed out', async () => {
    const health = new ProviderHealth(
      { errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeoutMs: 20, rollingWindowMs: 10_000, probeTimeoutMs: 20 },
      undefined,
    );
    const h = await referenceHarness({ providers: [providerRecord(1)], parts: { health } });
    h.pool.get('10.0.0.1', 1);
    const connection = h.transport.connection('10.0.0.1:1')!;
    connection.answer = () => Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'down'));
    await rejection(h.reference.call('echo', 'x', undefined));
    expect(health.breakerState('10.0.0.1:1')).toBe('open');
    await new Promise((resolve) => setTimeout(resolve, 40));
    let cancelled = false;
    const late = new ClientStream(
      () => {},
      () => (cancelled = true),
    );
    connection.openAnswer = () => new Promise((resolve) => setTimeout(() => resolve(late), 60));
    const error = await rejection(h.reference.call('generate', {}, { routingKey: PROMPT }, 'stream'));
    expect(String(error)).toMatch(/probe of provider 10\.0\.0\.1:1 timed out after 20 ms/);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(cancelled).toBe(true);
    clean(h, 1);
  });
});

describe('leastPrefilling', () => {
  const view = (address: string, prefillTokens?: number): ProviderView =>
    ({
      address,
      instance: providerRecord(1),
      stats: { inFlight: 0, inFlightTokens: 0, startedSinceLoad: 0, tokensSinceLoad: 0, prefillTokens, averageLatencyMs: () => undefined },
    }) as ProviderView;

  it('keeps the ties at the lowest count, returns the same list when nothing is narrowed, and counts stats without the field as 0', () => {
    const list = [view('a', 300), view('b', 0), view('c', 0), view('d', 20)];
    expect(leastPrefilling(list).map((v) => v.address)).toEqual(['b', 'c']);
    const even = [view('a', 5), view('b', 5)];
    expect(leastPrefilling(even)).toBe(even);
    expect(leastPrefilling([view('a', 10), view('b')]).map((v) => v.address)).toEqual(['b']);
  });
});

describe('the urgentPriority option', () => {
  it('takes 0 to 9 or false, and names what it got otherwise', async () => {
    for (const value of [10, -1, 2.5, 'high', true, null]) {
      const error = await rejection(createClient({ registry: 'shuttle://127.0.0.1:1', config: false, urgentPriority: value as never }));
      expect(String((error as Error).message)).toMatch(/urgentPriority.*an integer from 0 to 9, or false/);
    }
    for (const value of [0, 9, false] as const) {
      const client = await createClient({ registry: 'shuttle://127.0.0.1:1', config: false, urgentPriority: value });
      await client.close();
    }
  });
});
