import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, RpcCode, RpcMethod, RpcService, type RpcClient, type RpcServer } from 'shuttle-rpc';
import type { LoadBalancer, ProviderView, Registry } from 'shuttle-rpc/spi';
import { rejection } from '../helpers/wait.js';

/*
 * Registries, load balancers and serializers are user code with bugs: a broken one fails the
 * calls it touches with an error naming it, within the call's deadline, and nothing else.
 */
interface Api {
  ok(value: unknown): Promise<unknown>;
}

@RpcService({ name: 'test.Extended' })
class Extended {
  @RpcMethod()
  async ok(value: unknown): Promise<unknown> {
    return value;
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function client(options: Parameters<typeof createClient>[0]): Promise<RpcClient> {
  const made = await createClient({ config: false, ...options });
  cleanups.push(() => made.close());
  return made;
}

async function server(): Promise<RpcServer> {
  const made = await createServer({ host: '127.0.0.1', port: 0, registry: false, services: [new Extended()], config: false });
  cleanups.push(() => made.close());
  return made;
}

/** A registry extension that lists nothing, with `subscribe` replaced. */
function registry(subscribe: Registry['subscribe']): Registry {
  return { name: 'broken', register: async () => {}, unregister: async () => {}, reportLoad: async () => {}, close: async () => {}, subscribe };
}

describe('a registry extension', () => {
  it('whose subscribe never answers: the first call still ends at its deadline', async () => {
    const consumer = await client({ registry: registry(() => new Promise(() => {})), timeoutMs: 200 });
    const started = performance.now();
    const error = await rejection(consumer.proxy<Api>('test.Extended').ok(1));
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(error.message).toBe("[deadline exceeded] test.Extended.ok: deadline passed while waiting for the registry's first list of providers");
  });
});

describe('a load balancer extension', () => {
  const foreign: ProviderView = {
    instance: { service: 'test.Extended', version: '', group: '', host: '127.0.0.1', port: 1, protocol: 'tcp', weight: 100, metadata: {}, methods: [] },
    address: '127.0.0.1:1',
    stats: { inFlight: 0, inFlightTokens: 0, startedSinceLoad: 0, tokensSinceLoad: 0, averageLatencyMs: () => undefined },
  } as unknown as ProviderView;
  const broken: Array<[string, LoadBalancer['select'], string]> = [
    [
      'that throws',
      () => {
        throw new Error('no zone for this call');
      },
      'threw: no zone for this call',
    ],
    [
      'that throws a string',
      () => {
        throw 'bad zone';
      },
      'threw: bad zone',
    ],
    ['that returns nothing', () => undefined as never, 'returned undefined instead of a RouteDecision'],
    [
      'whose decision has no provider',
      () => ({ policy: 'zone', branch: 'pick' }) as never,
      'chose a provider that is not one of the 1 candidates it was given',
    ],
    [
      'that picks a provider it was not given',
      () => ({ provider: foreign, policy: 'zone', branch: 'pick' }),
      'chose a provider that is not one of the 1 candidates it was given',
    ],
  ];
  it.each(broken)('%s: the call fails before anything is sent, naming the balancer', async (_name, select, what) => {
    const provider = await server();
    const consumer = await client({ registry: provider.url, loadbalance: { name: 'zone', select }, timeoutMs: 2000 });
    const api = consumer.proxy<Api>('test.Extended');
    for (const stream of [false, true]) {
      const error = await rejection(
        stream
          ? (async () => {
              for await (const _ of api.ok(1) as unknown as AsyncIterable<unknown>) break;
            })()
          : api.ok(1),
      );
      expect(error.code).toBe(RpcCode.INTERNAL);
      expect(error.message).toBe(`[internal] load balancer "zone" ${what} (test.Extended.ok)`);
      expect(error.details).toMatchObject({ neverSent: true });
    }
  });
});
