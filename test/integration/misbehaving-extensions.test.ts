import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, RpcCode, RpcMethod, RpcService, type RpcClient, type RpcServer } from 'shuttle-rpc';
import { createContext, type ClusterStrategy, type LoadBalancer, type PayloadTarget, type ProviderView, type Registry, type Serializer } from 'shuttle-rpc/spi';
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
  it('whose subscribe throws: the call fails UNAVAILABLE, never sent', async () => {
    const consumer = await client({
      registry: registry(() => {
        throw new Error('no route to the registry');
      }),
      timeoutMs: 1000,
    });
    const error = await rejection(consumer.proxy<Api>('test.Extended').ok(1));
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toBe('[unavailable] cannot find providers of test.Extended: no route to the registry');
    expect(error.details).toMatchObject({ neverSent: true });
  });

  it('whose subscribe rejects with a string: the error names the registry', async () => {
    const consumer = await client({ registry: registry(() => Promise.reject('quota')), timeoutMs: 1000 });
    const error = await rejection(consumer.proxy<Api>('test.Extended').ok(1));
    expect(error.message).toBe('[unavailable] cannot find providers of test.Extended: registry broken failed with quota');
  });

  it('whose listener gets garbage among the records: the garbage is left out, the records are used', async () => {
    const provider = await server();
    const record = { service: 'test.Extended', version: '', group: '', host: '127.0.0.1', port: provider.port, protocol: 'tcp' };
    const good = { ...record, serializers: ['msgpack'], methods: [{ name: 'ok' }], weight: 100, startTime: Date.now(), metadata: {} };
    const consumer = await client({
      registry: registry(async (_query, listener) => {
        const send = listener as (list: unknown) => void;
        send('not a list');
        send([null, 5, { ...record, port: 'x' }, { ...good, methods: [null] }, { ...good, metadata: null }, good]);
        return { close: () => {} };
      }),
      timeoutMs: 1000,
    });
    expect(await consumer.proxy<Api>('test.Extended').ok('served')).toBe('served');
  });

  it('whose listener is later called with nothing: the last list is kept, nothing is thrown into the registry', async () => {
    const provider = await server();
    const good = {
      service: 'test.Extended',
      version: '',
      group: '',
      host: '127.0.0.1',
      port: provider.port,
      protocol: 'tcp',
      serializers: ['msgpack'],
      methods: [{ name: 'ok' }],
      weight: 100,
      startTime: Date.now(),
      metadata: {},
    };
    let later: ((list: unknown) => void) | undefined;
    const consumer = await client({
      registry: registry(async (_query, listener) => {
        later = listener as (list: unknown) => void;
        later([good]);
        return { close: () => {} };
      }),
      timeoutMs: 1000,
    });
    const api = consumer.proxy<Api>('test.Extended');
    expect(await api.ok(1)).toBe(1);
    for (const garbage of [undefined, null, { length: 1e9 }, [{ host: 3 }]]) expect(() => later!(garbage)).not.toThrow();
    // An array of nothing usable is a list of no providers; anything else is no list at all.
    later!([good]);
    expect(await api.ok(2)).toBe(2);
  });

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

describe('a serializer extension', () => {
  /** A JSON serializer with wire id 77 whose encode or decode is replaced. */
  function serializer(name: string, broken: Partial<Pick<Serializer, 'encode' | 'decode'>>): Serializer {
    return {
      id: 77,
      name,
      encode: (value) => Buffer.from(JSON.stringify(value ?? null)),
      decode: (bytes) => JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown,
      ...broken,
    };
  }

  /** A provider and a consumer that both speak `broken`, the consumer by default. */
  async function pairWith(broken: Serializer): Promise<Api> {
    const context = await createContext({ packageJson: false });
    context.extensions.serializer.register(broken.name, () => broken, { uniqueKey: broken.id });
    const provider = await createServer({
      host: '127.0.0.1',
      port: 0,
      registry: false,
      services: [new Extended()],
      serializers: [broken.name],
      context,
      config: false,
    });
    cleanups.push(() => provider.close());
    const consumer = await client({ registry: provider.url, serializer: broken.name, context, timeoutMs: 2000, circuitBreaker: false, outlierEjection: false });
    return consumer.proxy<Api>('test.Extended');
  }

  const onRequest = (wrong: () => unknown) => (value: unknown, target: PayloadTarget) =>
    (target.kind === 'request' ? wrong() : Buffer.from(JSON.stringify(value ?? null))) as Uint8Array;
  const onResponse = (wrong: () => unknown) => (value: unknown, target: PayloadTarget) =>
    (target.kind === 'response' ? wrong() : Buffer.from(JSON.stringify(value ?? null))) as Uint8Array;
  const cases: Array<[string, Serializer['encode'], RpcCode, string]> = [
    [
      'encode throws on a request',
      onRequest(() => {
        throw new Error('no schema for this value');
      }),
      RpcCode.INVALID_ARGUMENT,
      '[invalid argument] cannot encode the request of test.Extended.ok as broken: no schema for this value',
    ],
    [
      'encode returns a string for a request',
      onRequest(() => 'not bytes'),
      RpcCode.INVALID_ARGUMENT,
      '[invalid argument] cannot encode the request of test.Extended.ok as broken: its encode returned string, not a Uint8Array',
    ],
    [
      'encode returns undefined for a request',
      onRequest(() => undefined),
      RpcCode.INVALID_ARGUMENT,
      '[invalid argument] cannot encode the request of test.Extended.ok as broken: its encode returned undefined, not a Uint8Array',
    ],
    [
      'encode returns undefined for a response',
      onResponse(() => undefined),
      RpcCode.INTERNAL,
      '[internal] cannot encode the response of test.Extended.ok as broken: its encode returned undefined, not a Uint8Array',
    ],
  ];
  it.each(cases)('%s: the call fails naming the serializer; the next call is served', async (_name, encode, code, message) => {
    const api = await pairWith(serializer('broken', { encode }));
    const error = await rejection(api.ok({ a: 1 }));
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    expect(await rejection(api.ok({ a: 2 }))).toMatchObject({ code });
  });

  it('decode throws a Proxy whose every trap throws: the call fails, the connection and its other calls go on', async () => {
    const trap = (): never => {
      throw new Error('trap');
    };
    let calls = 0;
    const api = await pairWith(
      serializer('broken', {
        decode: (bytes, target) => {
          if (target.kind === 'request' && ++calls === 2) throw new Proxy({}, { get: trap, getPrototypeOf: trap, has: trap, ownKeys: trap });
          return JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
        },
      }),
    );
    expect(await api.ok('first')).toBe('first');
    const error = await rejection(api.ok('second'));
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.message).toBe('[invalid argument] cannot decode request of test.Extended.ok as broken: (a thrown object that cannot be shown as text)');
    expect(await api.ok('third')).toBe('third');
  });
});

describe('a cluster strategy extension', () => {
  it('that returns no promise: its call fails naming the strategy; calls made in the same tick go on', async () => {
    const provider = await server();
    const strategy: ClusterStrategy = {
      name: 'sloppy',
      invoke: (call) => {
        if ((call.invocation.request as number) === 2) return 'done' as unknown as Promise<unknown>;
        const chosen = call.select();
        return chosen === undefined ? Promise.reject(new Error('none')) : call.send(chosen);
      },
    };
    const consumer = await client({ registry: provider.url, cluster: strategy, timeoutMs: 2000 });
    const api = consumer.proxy<Api>('test.Extended');
    const [first, second, third] = await Promise.allSettled([api.ok(1), api.ok(2), api.ok(3)]);
    expect(first).toEqual({ status: 'fulfilled', value: 1 });
    expect(third).toEqual({ status: 'fulfilled', value: 3 });
    const error = (second as PromiseRejectedResult).reason as { code: number; message: string };
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toBe('[internal] cluster strategy "sloppy" returned string instead of a promise (test.Extended.ok)');
  });
});

describe("a provider's registry extension", () => {
  it('whose register rejects with a string: createServer fails with an Error naming the registry', async () => {
    const broken = { ...registry(async () => ({ close: () => {} })), register: () => Promise.reject('lease quota reached') };
    await expect(createServer({ host: '127.0.0.1', port: 0, registry: broken, services: [new Extended()], config: false })).rejects.toThrow(
      new Error('shuttle-rpc: registry broken could not register this provider: lease quota reached'),
    );
  });

  it('whose register never answers: createServer fails naming the registry once registerTimeoutMs pass, and stops listening', async () => {
    let port = 0;
    const hung = {
      ...registry(async () => ({ close: () => {} })),
      register: (instance: { port: number }) => {
        port = instance.port;
        return new Promise<void>(() => {});
      },
    };
    const started = performance.now();
    const error = await rejection(
      createServer({ host: '127.0.0.1', port: 0, registry: hung, services: [new Extended()], config: false, registerTimeoutMs: 300 }),
    );
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(error.message).toBe('[deadline exceeded] registry broken did not finish registering this provider within registerTimeoutMs (300 ms)');
    expect(performance.now() - started).toBeLessThan(5000);
    expect(port).toBeGreaterThan(0);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it('whose unregister throws: close still closes the listener', async () => {
    const broken = {
      ...registry(async () => ({ close: () => {} })),
      unregister: () => {
        throw new Error('registry gone');
      },
    };
    const provider = await createServer({ host: '127.0.0.1', port: 0, registry: broken, services: [new Extended()], config: false });
    await provider.close();
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(provider.port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});

describe("a reference's routingKey function", () => {
  it('that throws: the call fails INTERNAL naming the option, before anything is sent', async () => {
    const provider = await server();
    const consumer = await client({ registry: provider.url, timeoutMs: 1000 });
    const api = consumer.proxy<Api>('test.Extended', {
      routingKey: () => {
        throw 'no prompt';
      },
    });
    const error = await rejection(api.ok(1));
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toBe('[internal] reference test.Extended routingKey threw: no prompt');
    expect(error.details).toMatchObject({ neverSent: true });
  });
});
