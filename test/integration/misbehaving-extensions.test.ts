import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type RpcClient } from 'shuttle-rpc';
import type { Registry } from 'shuttle-rpc/spi';
import { rejection } from '../helpers/wait.js';

/*
 * Registries, load balancers and serializers are user code with bugs: a broken one fails the
 * calls it touches with an error naming it, within the call's deadline, and nothing else.
 */
interface Api {
  ok(value: unknown): Promise<unknown>;
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
