import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RpcCode, createClient, createServer, type RpcError } from 'shuttle-rpc';
import { createFileRegistry, type FileRegistry } from '../../src/registry/file/file.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { fileSuite } from '../helpers/file-suite.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { watchView } from '../helpers/view.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * The file registry (the embedded default): providers in their own processes, one folder, no
 * server. Default timings: heartbeat 1 s, TTL 3 s, consumers poll every 500 ms.
 */
const { cleanups, folder, provider } = fileSuite();
function consumerRegistry(dir: string): FileRegistry {
  const registry = createFileRegistry({ url: `file://${dir}` }) as FileRegistry;
  cleanups.push(() => registry.close());
  return registry;
}

describe('file registry', () => {
  it('lets processes on one host find each other with no server', async () => {
    const dir = await folder();
    const workers = [await provider(dir), await provider(dir)];
    const client = await createClient({ registry: `file://${dir}`, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const pids = new Set<number>();
    for (let i = 0; i < 40 && pids.size < 2; i++) pids.add(await echo.pid());
    expect([...pids].sort()).toEqual(workers.map((worker) => worker.process.pid!).sort());
    const view = await watchView(consumerRegistry(dir), 'test.Echo');
    cleanups.push(() => view.close());
    expect(view.instances.every((instance) => instance.load !== undefined && instance.load.draining === false)).toBe(true);
  });

  it('notices a new provider within a second', async () => {
    const dir = await folder();
    const view = await watchView(consumerRegistry(dir), 'test.Echo');
    cleanups.push(() => view.close());
    expect(view.instances).toEqual([]);
    const worker = await provider(dir);
    const readyAt = Date.now();
    await view.until((list) => list.length === 1, 'the provider to appear', 1500);
    expect(Date.now() - readyAt).toBeLessThanOrEqual(1000 + 100);
    expect(view.addresses()).toEqual([`127.0.0.1:${worker.port}`]);
  });

  it('drops a SIGKILLed provider within TTL + 2 s, and a stopped one at once', async () => {
    const dir = await folder();
    const [killed, stopped] = [await provider(dir), await provider(dir)];
    const view = await watchView(consumerRegistry(dir), 'test.Echo');
    cleanups.push(() => view.close());
    await view.until((list) => list.length === 2, 'both providers');

    const stoppedAt = Date.now();
    await stopped.stop();
    await view.until((list) => list.length === 1, 'the stopped provider to go', 1500);
    expect(Date.now() - stoppedAt).toBeLessThan(1500);

    const killedAt = Date.now();
    killed.process.kill('SIGKILL');
    await view.until((list) => list.length === 0, 'the killed provider to go', 5000);
    expect(Date.now() - killedAt).toBeLessThanOrEqual(3000 + 2000);
    // The stopped provider removed its files; only the killed one's stale files remain.
    const services = await readdir(path.join(dir, 'services', 'test.Echo'));
    expect(services).toEqual([`1.0.0@_@127.0.0.1%3A${killed.port}.json`]);
  });

  it('consumers stop picking a draining provider and finish its calls in flight', async () => {
    const dir = await folder();
    const registry = `file://${dir}`;
    const keep = new EchoService();
    const leave = new EchoService();
    const staying = await createServer({ services: [keep], registry, config: false });
    const leaving = await createServer({ services: [leave], registry, drainTimeoutMs: 5000, config: false });
    cleanups.push(() => staying.close());
    const client = await createClient({ registry, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    await Promise.all(Array.from({ length: 20 }, (_, i) => echo.echo(i)));
    expect(leave.counts['echo']).toBeGreaterThan(0);

    // Calls in flight on the leaving provider finish although it is closing.
    const slow = Array.from({ length: 10 }, () => echo.sleep({ ms: 400 }));
    await waitUntil(() => (leave.counts['sleep'] ?? 0) > 0 && (keep.counts['sleep'] ?? 0) > 0, 'slow calls on both providers');
    const closing = leaving.close();
    expect(await Promise.all(slow)).toEqual(Array.from({ length: 10 }, () => ({ aborted: false })));
    await closing;
    const before = leave.counts['echo'];
    await new Promise((resolve) => setTimeout(resolve, 700));
    await Promise.all(Array.from({ length: 20 }, (_, i) => echo.echo(i)));
    expect(leave.counts['echo']).toBe(before);
  });

  it('a call in flight on a provider that leaves gets its answer however long it runs, and the client closes at once', async () => {
    const dir = await folder();
    const registry = `file://${dir}`;
    const leave = new EchoService();
    const leaving = await createServer({ services: [leave], registry, drainTimeoutMs: 20_000, config: false });
    const client = await createClient({ registry, config: false, timeoutMs: 20_000 });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    // Longer than any fixed wait the consumer might put on a departed provider's connection.
    const long = echo.sleep({ ms: 6500 });
    await waitUntil(() => (leave.counts['sleep'] ?? 0) > 0, 'the call to start');
    const closing = leaving.close();
    expect(await long).toEqual({ aborted: false });
    await closing;
    // A second call to a leaving provider is held open by its call only: closing the client
    // ends it at once.
    const again = await createServer({ services: [new EchoService()], registry, drainTimeoutMs: 20_000, config: false });
    const held = echo.sleep({ ms: 10_000 }).catch((error: RpcError) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stopping = again.close();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const closedAt = Date.now();
    await client.close();
    expect(Date.now() - closedAt).toBeLessThan(1500);
    expect(((await held) as RpcError).code).toBe(RpcCode.UNAVAILABLE);
    await stopping;
  });

  it('carries a provider’s largest prefix-cache summary (2,048 hashes) to consumers with its load', async () => {
    const dir = await folder();
    const registry = createFileRegistry({ url: `file://${dir}` }) as FileRegistry;
    cleanups.push(() => registry.close());
    const instance = providerRecord(4321, { host: '127.0.0.1' });
    await registry.register(instance);
    const cachedPrefixes = Array.from({ length: 2048 }, (_, i) => 0x3fffffff - i);
    await registry.reportLoad('127.0.0.1:4321', {
      timestamp: Date.now(),
      running: 3,
      waiting: 1,
      waitingUncachedTokens: 100,
      kvUsage: 0.5,
      tokensPerSecond: 100,
      draining: false,
      cachedPrefixes,
    });
    const view = await watchView(consumerRegistry(dir), instance.service);
    cleanups.push(() => view.close());
    await view.until((list) => list[0]?.load?.cachedPrefixes?.length === 2048, 'the load with its summary');
  });

  it('answers UNAVAILABLE naming the service when no provider is registered', async () => {
    const dir = await folder();
    const client = await createClient({ registry: `file://${dir}`, config: false });
    cleanups.push(() => client.close());
    const error = (await rejection(client.proxy<EchoApi>('test.Echo').echo(1))) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toMatch(/no provider of test\.Echo is registered/);
  });

  it('is the default registry of servers and clients', async () => {
    const server = await createServer({ services: [new EchoService()], config: false });
    cleanups.push(() => server.close());
    expect(server.registry?.name).toBe('file');
    const client = await createClient({ config: false });
    cleanups.push(() => client.close());
    expect(await client.proxy<EchoApi>('test.Echo').echo('found')).toBe('found');
  });
});
