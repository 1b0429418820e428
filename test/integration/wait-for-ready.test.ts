import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, createServer, type RpcClient, type RpcServer } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * `waitForReady`: a call made while no provider is listed waits, within its deadline, for one to
 * register, over real loopback sockets; without it the call fails at once.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
let registries = 0;
const registryUrl = (): string => `memory://wait-for-ready-${process.pid}-${++registries}`;

async function client(registry: string): Promise<RpcClient> {
  const made = await createClient({ registry, config: false });
  cleanups.push(() => made.close());
  return made;
}
async function serve(registry: string, load?: () => { draining: boolean }): Promise<RpcServer> {
  const server = await createServer({ services: [new EchoService()], registry, config: false, ...(load === undefined ? {} : { load, loadIntervalMs: 50 }) });
  cleanups.push(() => server.close());
  return server;
}
const later = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('waitForReady', () => {
  it('a call made before any provider registers succeeds once one does; without the option it fails at once, UNAVAILABLE', async () => {
    const registry = registryUrl();
    const echo = (await client(registry)).proxy<EchoApi>('test.Echo');
    const started = performance.now();
    const refused = await rejection(echo.add({ a: 1, b: 2 }));
    expect(refused.code).toBe(RpcCode.UNAVAILABLE);
    expect(refused.message).toContain('no provider of test.Echo is registered');
    expect(performance.now() - started).toBeLessThan(1000);

    const waiting = echo.add({ a: 2, b: 40 }, { waitForReady: true, timeoutMs: 5000 });
    const secondWaiting = echo.add({ a: 1, b: 1 }, { waitForReady: true, timeoutMs: 5000 });
    await later(300);
    await serve(registry);
    expect(await waiting).toEqual({ sum: 42 });
    expect(await secondWaiting).toEqual({ sum: 2 });
  });

  it('as the reference option, for every call of the reference; a call can turn it off', async () => {
    const registry = registryUrl();
    const consumer = await client(registry);
    const echo = consumer.proxy<EchoApi>('test.Echo', { waitForReady: true, timeoutMs: 5000 });
    const refused = await rejection(echo.add({ a: 1, b: 2 }, { waitForReady: false }));
    expect(refused.code).toBe(RpcCode.UNAVAILABLE);
    const waiting = echo.add({ a: 20, b: 22 });
    await later(200);
    await serve(registry);
    expect(await waiting).toEqual({ sum: 42 });
  });

  it('ends at the call deadline with DEADLINE_EXCEEDED saying what it waited for, and at its signal with CANCELLED', async () => {
    const registry = registryUrl();
    const echo = (await client(registry)).proxy<EchoApi>('test.Echo');
    const started = performance.now();
    const expired = await rejection(echo.add({ a: 1, b: 2 }, { waitForReady: true, timeoutMs: 300 }));
    const waited = performance.now() - started;
    expect(expired.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(expired.message).toMatch(/no provider of test\.Echo is registered \(waited \d+ ms for one: waitForReady\)/);
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(2000);

    const controller = new AbortController();
    const cancelled = rejection(echo.add({ a: 1, b: 2 }, { waitForReady: true, timeoutMs: 5000, signal: controller.signal }));
    await later(100);
    controller.abort();
    expect((await cancelled).code).toBe(RpcCode.CANCELLED);
  });

  it('waits out a provider that is listed but draining, and is refused a value that is not a boolean', async () => {
    const registry = registryUrl();
    const consumer = await client(registry);
    const echo = consumer.proxy<EchoApi>('test.Echo');
    let draining = false;
    await serve(registry, () => ({ draining }));
    expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    draining = true;
    const seenDraining = (): Promise<boolean> =>
      echo.add({ a: 1, b: 1 }).then(
        () => false,
        (error: Error) => error.message.includes('(1 draining)'),
      );
    await waitUntil(seenDraining, 'the provider to be seen draining', 3000, 20);
    const waiting = echo.add({ a: 3, b: 4 }, { waitForReady: true, timeoutMs: 5000 });
    await later(200);
    await serve(registry);
    expect(await waiting).toEqual({ sum: 7 });
    const wrong = await rejection(echo.add({ a: 1, b: 1 }, { waitForReady: 'yes' as unknown as boolean }));
    expect(wrong.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(wrong.message).toContain('waitForReady of test.Echo.add must be true or false, got "yes"');
    expect(() => consumer.proxy<EchoApi>('test.Echo', { waitForReady: 1 as unknown as boolean })).toThrow(/waitForReady/);
  });

  it('is refused UNAVAILABLE when the client closes while it waits', async () => {
    const registry = registryUrl();
    const consumer = await createClient({ registry, config: false });
    const echo = consumer.proxy<EchoApi>('test.Echo');
    const waiting = rejection(echo.add({ a: 1, b: 2 }, { waitForReady: true, timeoutMs: 5000 }));
    await later(100);
    const started = performance.now();
    await consumer.close();
    const error = await waiting;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
