import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, createServer, type RpcError, type RpcServer } from 'shuttle-rpc';
import { connectRaw } from 'shuttle-rpc/testing';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { StreamService, type StreamApi } from '../fixtures/stream-service.js';
import { requestFrame } from '../helpers/frames.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * Plugins loaded the two ways a user loads them — from the config's plugins list and from
 * package.json's shuttle.plugins — taking part in real calls over loopback sockets.
 */
const plugins = fileURLToPath(new URL('../fixtures/plugins/', import.meta.url));
const COUNT = Symbol.for('shuttle-test.reverse-json.count');
const counter = (): number => (globalThis as unknown as Record<symbol, number>)[COUNT] ?? 0;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
async function dir(files: Record<string, string>): Promise<string> {
  const tmp = await tempDir(files);
  cleanups.push(tmp.remove);
  return tmp.dir;
}
async function serve(options: Parameters<typeof createServer>[0]): Promise<RpcServer> {
  const server = await createServer(options);
  cleanups.push(() => server.close());
  return server;
}

describe('a plugin from the config file', () => {
  it('adds a serializer that consumers and providers use on the wire', async () => {
    const cwd = await dir({
      'shuttle.config.json': JSON.stringify({
        plugins: [path.join(plugins, 'reverse-json.mjs')],
        registry: `memory://plugins-config-${process.pid}`,
        server: { serializers: ['reverse-json'] },
        client: { serializer: 'reverse-json' },
      }),
    });
    const server = await serve({ services: [new EchoService()], config: { cwd, env: {} } });
    expect(server.instances[0]?.serializers).toEqual(['msgpack', 'json', 'reverse-json']);
    expect(server.context.plugins).toEqual(['reverse-json-plugin']);
    const client = await createClient({ config: { cwd, env: {} } });
    cleanups.push(() => client.close());
    const before = counter();
    expect(await client.proxy<EchoApi>('test.Echo').add({ a: 2, b: 40 })).toEqual({ sum: 42 });
    // client encode, provider decode, provider encode, client decode
    expect(counter() - before).toBe(4);

    // And on the wire: serializer byte 42 with reversed JSON is understood and answered in kind.
    const raw = await connectRaw('127.0.0.1', server.port);
    raw.send(requestFrame(1, 'add', Buffer.from(JSON.stringify({ a: 1, b: 2 })).reverse(), { serializer: 42 }));
    const answer = await raw.nextFrame();
    expect([answer.status, answer.serializer]).toEqual([0, 42]);
    expect(JSON.parse(Buffer.from(answer.body).reverse().toString())).toEqual({ sum: 3 });
    raw.close();
  });
});

describe('a plugin from package.json', () => {
  it('adds a load balancer that picks the provider of every call', async () => {
    const cwd = await dir({ 'package.json': JSON.stringify({ name: 'app', shuttle: { plugins: ['./highest-port.mjs'] } }) });
    await copyFile(path.join(plugins, 'highest-port.mjs'), path.join(cwd, 'highest-port.mjs'));
    const registry = `memory://plugins-package-${process.pid}`;
    const services = [new EchoService(), new EchoService()];
    const servers = [await serve({ services: [services[0]!], registry, config: false }), await serve({ services: [services[1]!], registry, config: false })];
    const client = await createClient({ registry, loadbalance: 'highest-port', config: { cwd, env: {} } });
    cleanups.push(() => client.close());
    expect(client.context.plugins).toEqual(['highest-port-plugin']);
    const echo = client.proxy<EchoApi>('test.Echo');
    await Promise.all(Array.from({ length: 30 }, (_, i) => echo.echo(i)));
    const high = servers[0]!.port > servers[1]!.port ? 0 : 1;
    expect(services[high]!.counts['echo']).toBe(30);
    expect(services[1 - high]!.counts['echo']).toBeUndefined();
  });
});

describe('override rules', () => {
  it('lets a plugin replace a built-in only when it says override', async () => {
    const registry = `memory://plugins-override-${process.pid}`;
    const services = [new EchoService(), new EchoService()];
    const servers = [await serve({ services: [services[0]!], registry, config: false }), await serve({ services: [services[1]!], registry, config: false })];
    const client = await createClient({ registry, plugins: [path.join(plugins, 'lowest-port-override.mjs')], config: false });
    cleanups.push(() => client.close());
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.proxy<EchoApi>('test.Echo').echo(i)));
    const low = servers[0]!.port < servers[1]!.port ? 0 : 1;
    expect(services[low]!.counts['echo']).toBe(20);

    await expect(createClient({ plugins: [path.join(plugins, 'hijack.mjs')], config: false })).rejects.toThrow(
      /plugin hijack \(.*hijack\.mjs\) failed in setup: shuttle-rpc: serializer "msgpack" is already registered; a plugin may replace it only with register\(name, factory, \{ override: true \}\)/,
    );
  });
});

describe('bad plugins fail at start-up with the module named', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['a module that does not exist', ['./no-such-plugin.mjs'], /plugin \.\/no-such-plugin\.mjs not found \(looked for .*no-such-plugin\.mjs\)/],
    ['a package that is not installed', ['no-such-shuttle-plugin-package'], /plugin package no-such-shuttle-plugin-package not found from/],
    [
      'a module that throws while loading',
      [path.join(plugins, 'throws-on-load.mjs')],
      /plugin .*throws-on-load\.mjs .* threw while loading: boom while loading/,
    ],
    [
      'a module with the wrong shape',
      [path.join(plugins, 'wrong-shape.mjs')],
      /plugin .*wrong-shape\.mjs .* must export a ShuttlePlugin \{ name: string, setup\(extensions\) \} as default or as "plugin"/,
    ],
    ['a setup that throws', [path.join(plugins, 'setup-throws.mjs')], /plugin setup-throws \(.*setup-throws\.mjs\) failed in setup: cannot set up/],
    [
      'two plugins with one name',
      [path.join(plugins, 'highest-port.mjs'), path.join(plugins, 'same-name.mjs')],
      /plugin .*same-name\.mjs \(.*same-name\.mjs\) is named "highest-port-plugin", the name of plugin .*highest-port\.mjs already loaded; plugin names must be unique/,
    ],
    [
      'two plugins claiming one serializer id',
      [path.join(plugins, 'reverse-json.mjs'), path.join(plugins, 'id-clash.mjs')],
      /plugin id-clash .* serializer "other42" claims wire id 42, already claimed by "reverse-json"/,
    ],
  ];
  it.each(cases)('%s', async (_name, list, message) => {
    await expect(createClient({ plugins: list, config: false })).rejects.toThrow(message);
    await expect(createServer({ services: [new EchoService()], plugins: list, config: false })).rejects.toThrow(message);
  });

  it('an unknown extension name lists the known ones', async () => {
    await expect(createClient({ loadbalance: 'p3c', config: false })).rejects.toThrow(
      'shuttle-rpc: invalid loadbalance: "p3c" (allowed: one of the registered loadbalance extensions: random, round-robin, least-active, shortest-response, p2c, consistent-hash, prefix-affinity, slo)',
    );
    await expect(createClient({ cluster: 'failover2', config: false })).rejects.toThrow(
      /invalid cluster: "failover2" \(allowed: one of the registered cluster extensions: failover, failfast, failsafe, failback, forking, broadcast\)/,
    );
    await expect(createClient({ serializer: 'avro', config: false })).rejects.toThrow(/invalid serializer: "avro" \(allowed: msgpack, json\)/);
    await expect(createServer({ services: [new EchoService()], transport: 'quic', config: false })).rejects.toThrow(
      /invalid transport: "quic" \(allowed: one of the registered transport extensions: tcp, grpc\)/,
    );
  });

  it('invalid config values are rejected with the key named', async () => {
    await expect(createClient({ timeoutMs: -1, config: false })).rejects.toThrow(
      'shuttle-rpc: invalid timeoutMs: -1 (allowed: an integer from 1 to 2147483647)',
    );
    await expect(createClient({ timeoutMz: 5, config: false } as never)).rejects.toThrow(/unknown option client\.timeoutMz/);
    await expect(createClient({ registry: 'localhost:2379', config: false })).rejects.toThrow(/invalid registry: "localhost:2379"/);
  });
});

describe('built-in filters over the wire', () => {
  it('token: a provider with a token refuses callers without it', async () => {
    const server = await serve({ services: [new EchoService()], token: 'k3y', config: false });
    const anonymous = await createClient({ registry: server.url, config: false });
    const trusted = await createClient({ registry: server.url, token: 'k3y', config: false });
    cleanups.push(
      () => anonymous.close(),
      () => trusted.close(),
    );
    const error = (await rejection(anonymous.proxy<EchoApi>('test.Echo').echo(1))) as RpcError;
    expect(error.code).toBe(RpcCode.UNAUTHENTICATED);
    expect(await trusted.proxy<EchoApi>('test.Echo').echo(1)).toBe(1);
  });

  it('concurrency-limit: calls over maxConcurrentCalls are refused with a retry hint', async () => {
    const server = await serve({ services: [new EchoService()], maxConcurrentCalls: 1, config: false });
    const client = await createClient({ registry: server.url, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const first = echo.sleep({ ms: 200 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const refused = (await rejection(echo.sleep({ ms: 1 }))) as RpcError;
    expect(refused.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    // Computed from the provider's slots and service times, bounded and jittered.
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(5);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(10_000);
    await first;
    expect(await echo.sleep({ ms: 1 })).toEqual({ aborted: false });
  });

  it('concurrency-limit: a stream holds its slot until it ends, not only until it opens', async () => {
    // StreamService wants a client for its relay method, which this test does not call.
    const relayClient = await createClient({ registry: 'shuttle://127.0.0.1:1', config: false });
    cleanups.push(() => relayClient.close());
    const server = await serve({ services: [new StreamService(relayClient)], maxConcurrentCalls: 1, config: false });
    const caller = await createClient({ registry: server.url, config: false });
    cleanups.push(() => caller.close());
    const stream = caller.proxy<StreamApi>('test.Stream');
    const chunks: unknown[] = [];
    const first = (async () => {
      for await (const chunk of stream.count({ n: 3, delayMs: 100 })) chunks.push(chunk);
    })();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The first stream is open and still streaming: the provider is at its limit.
    expect(chunks.length).toBeGreaterThan(0);
    const refused = (await rejection(stream.stats())) as RpcError;
    expect(refused.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    await first;
    // Ended: the slot is free again, for streams and unary calls alike.
    await expect(stream.stats()).resolves.toMatchObject({ started: 1, finallyRan: 1 });
    // A stream left early (cancelled) gives its slot back too, once the cancel reaches it.
    let reopened = 0;
    for await (const _ of stream.count({ n: 1000, delayMs: 5 })) if (++reopened === 2) break;
    let stats: unknown;
    await waitUntil(async () => (stats = await stream.stats().catch(() => undefined)) !== undefined, 'the cancelled stream to give its slot back', 2000, 20);
    expect(stats).toMatchObject({ started: 2, finallyRan: 2 });
  });
});
