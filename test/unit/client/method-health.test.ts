import { describe, expect, it } from 'vitest';
import { ProviderHealth } from '../../../src/cluster/provider-health.js';
import { MAX_TRACKED_METHODS } from '../../../src/cluster/method-health.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { ClientStream } from '../../../src/transport/client-stream.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { referenceHarness } from './reference-harness.js';

/*
 * Health per (provider, method): a method that fails on one worker whose other methods answer
 * well is routed away from that worker alone; the application's own answers about a request
 * (NOT_FOUND, INVALID_ARGUMENT) say nothing about the worker.
 */
const PROVIDERS = [providerRecord(1), providerRecord(2), providerRecord(3), providerRecord(4)];

/** A stream that has already delivered its one chunk and ended. */
function goodStream(): ClientStream {
  const stream = new ClientStream(
    () => {},
    () => {},
  );
  stream.push(1, 8);
  stream.end({ count: 1 });
  return stream;
}

describe('health per method', () => {
  it('ejects a worker for the stream method it always fails, 1 call in 10, and keeps sending it the unary calls it serves', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 5, baseMs: 60_000, maxMs: 120_000, maxPercent: 50 });
    const h = await referenceHarness({ providers: PROVIDERS, parts: { health, balancer: defaultExtensions().loadbalance.create('round-robin') } });
    await h.directory.ready();
    for (const port of [1, 2, 3, 4]) {
      h.pool.get('10.0.0.1', port, `10.0.0.1:${port}`);
      h.transport.connection(`10.0.0.1:${port}`)!.openAnswer = () =>
        port === 1 ? Promise.reject(new RpcError(RpcCode.INTERNAL, 'the model behind count is broken')) : Promise.resolve(goodStream());
    }
    const streamsTo = new Map<string, number>();
    const unaryTo = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const stream = i % 10 === 0;
      await h.reference.call(stream ? 'count' : 'echo', i, undefined, stream ? 'stream' : 'unary').catch(() => {});
      const provider = h.routes.at(-1)!.decision.provider.address;
      const counts = stream ? streamsTo : unaryTo;
      counts.set(provider, (counts.get(provider) ?? 0) + 1);
    }
    // Five failures in a row eject the method there; its unary calls keep their share.
    expect(streamsTo.get('10.0.0.1:1') ?? 0).toBe(5);
    expect(unaryTo.get('10.0.0.1:1')! / 900).toBeGreaterThan(0.2);
    expect(health.available('10.0.0.1:1')).toBe(true);
    expect(health.available('10.0.0.1:1', Date.now(), 'count')).toBe(false);
    health.close();
  });

  it('passes over a worker deployed without a method (UNIMPLEMENTED) for that method alone', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 5, baseMs: 60_000, maxMs: 120_000, maxPercent: 50 });
    const h = await referenceHarness({ providers: PROVIDERS, parts: { health, balancer: defaultExtensions().loadbalance.create('random') } });
    await h.directory.ready();
    for (const port of [1, 2, 3, 4]) {
      h.pool.get('10.0.0.1', port, `10.0.0.1:${port}`);
      h.transport.connection(`10.0.0.1:${port}`)!.answer = (invocation) =>
        port === 1 && invocation.method === 'write'
          ? Promise.reject(new RpcError(RpcCode.UNIMPLEMENTED, 'no method write'))
          : new Promise((resolve) => setTimeout(() => resolve(invocation.request), 1));
    }
    let writesTo1 = 0;
    let echoesTo1 = 0;
    for (let i = 0; i < 400; i++) {
      const method = i % 4 === 0 ? 'write' : 'echo';
      await h.reference.call(method, i, undefined).catch(() => {});
      if (h.routes.at(-1)!.decision.provider.address !== '10.0.0.1:1') continue;
      if (method === 'write') writesTo1++;
      else echoesTo1++;
    }
    expect(writesTo1).toBe(5);
    expect(echoesTo1 / 300).toBeGreaterThan(0.15);
    expect(health.available('10.0.0.1:1')).toBe(true);
    health.close();
  });

  it('tracks a bounded number of methods per provider, however many names a caller makes up', async () => {
    const health = new ProviderHealth(undefined, { consecutiveFailures: 2, baseMs: 60_000, maxMs: 120_000, maxPercent: 50 });
    const record = health.record('a');
    for (let i = 0; i < 10_000; i++) {
      for (let twice = 0; twice < 2; twice++) {
        health.failed(record, new RpcError(RpcCode.UNAVAILABLE, 'x'), `made-up-${i}`);
        // Its other calls succeed: the provider itself is not ejected.
        health.succeeded(record);
      }
    }
    expect(record.methods!.size).toBe(MAX_TRACKED_METHODS);
    // The first names stay ejected; names past the bound fall to the provider's own run.
    expect(health.available('a', Date.now(), 'made-up-0')).toBe(false);
    expect(health.available('a', Date.now(), 'made-up-9999')).toBe(true);
    health.close();
  });

  it('does not count an application error (NOT_FOUND) against the worker that answered it', async () => {
    const h = await referenceHarness({ providers: PROVIDERS.slice(0, 2), parts: { balancer: defaultExtensions().loadbalance.create('least-active') } });
    await h.directory.ready();
    for (const port of [1, 2]) {
      h.pool.get('10.0.0.1', port, `10.0.0.1:${port}`);
      h.transport.connection(`10.0.0.1:${port}`)!.answer = (invocation) =>
        new Promise((resolve, reject) =>
          setTimeout(() => (invocation.request === 'missing' ? reject(new RpcError(RpcCode.NOT_FOUND, 'no such key')) : resolve('found')), 2),
        );
    }
    // A request for a missing key, then a good one: the good one goes to either worker alike.
    let same = 0;
    for (let i = 0; i < 60; i++) {
      await h.reference.call('echo', 'missing', undefined).catch(() => {});
      const failedAt = h.routes.at(-1)!.decision.provider.address;
      expect(h.stats.get(failedAt).failing).toBe(0);
      await h.reference.call('echo', 'present', undefined);
      if (h.routes.at(-1)!.decision.provider.address === failedAt) same++;
    }
    expect(same).toBeGreaterThan(12);
  });
});
