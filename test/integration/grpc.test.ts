import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcError, createClient, createServer, type Endpoint, type Proxied, type RpcClient, type ServiceInstance } from 'shuttle-rpc';
import { createFileRegistry } from '../../src/registry/file/file.js';
import type { PlainApi } from '../fixtures/plain-service.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import type { StreamApi } from '../fixtures/stream-service.js';
import { makeCertificates, renewServerCertificate } from '../helpers/certs.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * The grpc transport between real processes over loopback: a shuttle provider serving tcp and
 * gRPC side by side, called by plain @grpc/grpc-js clients built only from the .proto (as a
 * Python or Go client would), by shuttle consumers over gRPC, and a shuttle consumer calling a
 * gRPC server that has no shuttle code at all.
 */
const run = promisify(execFile);
const protoFile = fileURLToPath(new URL('../fixtures/grpc.proto', import.meta.url));
const grpcTransport = { type: 'grpc', options: { protoFiles: [protoFile] } };

interface PlainStubs {
  echo: grpc.Client & Record<string, Function>;
  stream: grpc.Client & Record<string, Function>;
}

/** Plain grpc-js stubs from the .proto alone (the generated-stub experience of any language). */
function plainStubs(address: string, credentials = grpc.credentials.createInsecure()): PlainStubs {
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { defaults: true })) as unknown as {
    test: { Echo: grpc.ServiceClientConstructor; Stream: grpc.ServiceClientConstructor };
  };
  return {
    echo: new loaded.test.Echo(address, credentials) as PlainStubs['echo'],
    stream: new loaded.test.Stream(address, credentials) as PlainStubs['stream'],
  };
}

function unary<T>(client: PlainStubs['echo'], method: string, request: unknown, options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method]!(request, metadata, options, (error: grpc.ServiceError | null, value: T) => (error ? reject(error) : resolve(value)));
  });
}

/** The first value `read` gives (read every 20 ms, up to 3 s) for which `ok` holds. */
async function readWhen<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  let value: T | undefined;
  await waitUntil(
    async () => ok((value = await read())),
    () => `${what} (last read: ${JSON.stringify(value)})`,
    3000,
    20,
  );
  return value as T;
}

function grpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return rejection(promise) as Promise<never>;
}

let registryDir: { dir: string; remove(): Promise<void> };
let provider: Child;
let grpcPort: number;
let tcpClient: RpcClient;
let streamStats: Proxied<StreamApi>;
let echoControl: Proxied<EchoApi>;
let plain: PlainStubs;

beforeAll(async () => {
  registryDir = await tempDir();
  provider = await startFixture('provider', { PROVIDER_GRPC: '1', SHUTTLE_REGISTRY: `file://${registryDir.dir}` });
  grpcPort = (provider.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
  // The tests look at the provider's side (abort reasons, stream stats) over plain tcp.
  tcpClient = await createClient({ registry: provider.url, timeoutMs: 10_000, config: false });
  streamStats = tcpClient.proxy<StreamApi>('test.Stream');
  echoControl = tcpClient.proxy<EchoApi>('test.Echo');
  plain = plainStubs(`127.0.0.1:${grpcPort}`);
});
afterAll(async () => {
  plain?.echo.close();
  plain?.stream.close();
  await tcpClient?.close();
  await provider?.stop();
  await registryDir?.remove();
});
beforeEach(async () => {
  await Promise.all([streamStats.reset(), echoControl.reset()]);
});

describe('a plain grpc-js client, built from the .proto only, calling a shuttle provider', () => {
  it('unary: the .proto rpc reaches the decorated method and the answer is the declared message', async () => {
    await expect(unary(plain.echo, 'Add', { a: 2, b: 40 })).resolves.toEqual({ sum: 42 });
  });

  it('server streaming: every message in order, then OK with the trailer in shuttle-trailer-bin', async () => {
    const call = plain.stream['Count']!({ n: 5 }) as grpc.ClientReadableStream<{ i: number }>;
    const items: number[] = [];
    call.on('data', (item: { i: number }) => items.push(item.i));
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(items).toEqual([0, 1, 2, 3, 4]);
    expect(JSON.parse(String(status.metadata.get('shuttle-trailer-bin')[0]))).toEqual({ count: 5 });
  });

  it('cancel (RST_STREAM) stops the generator on the provider and runs its finally', async () => {
    const call = plain.stream['Count']!({ n: 10_000, delayMs: 10 }) as grpc.ClientReadableStream<{ i: number }>;
    let received = 0;
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {
      if (++received === 3) call.cancel();
    });
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    const stats = await readWhen(
      () => streamStats.stats(),
      (seen) => seen.finallyRan > 0,
      "the generator's finally block",
    );
    expect(stats).toMatchObject({ started: 1, aborted: 1, finallyRan: 1 });
    expect(stats.yielded).toBeLessThan(100);
    expect(stats.lastAbortReason).toMatch(/cancelled by the caller/);
  });

  it('deadline (grpc-timeout) ends the call DEADLINE_EXCEEDED and aborts the handler near its time', async () => {
    const started = Date.now();
    const error = await grpcError(unary(plain.echo, 'Sleep', { ms: 10_000 }, { deadline: Date.now() + 300 }));
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(3000);
    const reason = await readWhen(
      () => echoControl.lastAbort(),
      (seen) => seen !== null,
      'the handler to be aborted',
    );
    expect(reason).toMatch(/deadline|cancelled/);
  });

  it('an RpcError becomes its gRPC status: same code, message as grpc-message, details in shuttle-error-bin', async () => {
    const error = await grpcError(unary(plain.echo, 'Fail', { code: RpcCode.RESOURCE_EXHAUSTED, message: 'no free KV blocks' }));
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe('no free KV blocks');
    expect(JSON.parse(String(error.metadata.get('shuttle-error-bin')[0]))).toEqual({ details: { where: 'fail' }, retryAfterMs: 250 });
    for (const code of [RpcCode.INVALID_ARGUMENT, RpcCode.NOT_FOUND, RpcCode.PERMISSION_DENIED, RpcCode.UNAUTHENTICATED, RpcCode.UNAVAILABLE]) {
      expect((await grpcError(unary(plain.echo, 'Fail', { code, message: `code ${code}` }))).code).toBe(code);
    }
  });

  it('a path the provider does not serve is UNIMPLEMENTED; a body that is not the declared message is INVALID_ARGUMENT', async () => {
    const raw = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
    try {
      const call = (path: string, body: Buffer) =>
        new Promise((resolve, reject) =>
          raw.makeUnaryRequest(
            path,
            (b: Buffer) => b,
            (b: Buffer) => b,
            body,
            (error, value) => (error ? reject(error) : resolve(value)),
          ),
        );
      expect((await grpcError(call('/test.Echo/Nope', Buffer.alloc(0)))).code).toBe(grpc.status.UNIMPLEMENTED);
      // test.Echo's echo is not in the .proto: over gRPC the service is what the .proto says.
      expect((await grpcError(call('/test.Echo/echo', Buffer.alloc(0)))).code).toBe(grpc.status.UNIMPLEMENTED);
      const bad = await grpcError(call('/test.Echo/Add', Buffer.from([0xff, 0xff, 0xff])));
      expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(bad.details).toMatch(/cannot decode request of test\.Echo\.add as test\.AddRequest/);
    } finally {
      raw.close();
    }
    // Nothing ran for any of them.
    expect((await echoControl.invocations())['add']).toBeUndefined();
  });
});

describe('a shuttle consumer over gRPC', () => {
  let client: RpcClient;
  beforeAll(async () => {
    client = await createClient({ registry: `file://${registryDir.dir}`, transport: grpcTransport, timeoutMs: 10_000, config: false });
  });
  afterAll(() => client?.close());

  it('finds the grpc endpoint in the registry record, which lists both protocols', async () => {
    const registry = createFileRegistry({ dir: registryDir.dir });
    let records: readonly ServiceInstance[] = [];
    const subscription = await registry.subscribe({ service: 'test.Echo' }, (instances) => (records = instances));
    try {
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({
        protocol: 'tcp',
        port: provider.port,
        endpoints: [
          { protocol: 'tcp', port: provider.port },
          { protocol: 'grpc', port: grpcPort },
        ],
      });
    } finally {
      subscription.close();
      await registry.close();
    }
    const routes: string[] = [];
    const watched = await createClient({
      registry: `file://${registryDir.dir}`,
      transport: grpcTransport,
      onRoute: (event) => routes.push(event.decision.provider.address),
      config: false,
    });
    try {
      await expect(watched.proxy<EchoApi>('test.Echo').add({ a: 1, b: 2 })).resolves.toEqual({ sum: 3 });
      expect(routes).toEqual([`127.0.0.1:${grpcPort}`]);
    } finally {
      await watched.close();
    }
  });

  it('protobuf services: unary, streaming with the trailer, and errors rebuilt with details and retry hint', async () => {
    const echo = client.proxy<EchoApi>('test.Echo');
    const stream = client.proxy<StreamApi>('test.Stream');
    await expect(echo.add({ a: 20, b: 22 })).resolves.toEqual({ sum: 42 });
    const call = stream.count({ n: 4 });
    const items = [];
    for await (const item of call) items.push(item);
    expect(items).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }]);
    await expect(call.trailer).resolves.toEqual({ count: 4 });
    const error = (await rejection(echo.fail({ code: RpcCode.RESOURCE_EXHAUSTED, message: 'busy' }))) as RpcError;
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: RpcCode.RESOURCE_EXHAUSTED, rawMessage: 'busy', details: { where: 'fail' }, retryAfterMs: 250 });
    // A stream that fails midway delivers what came before the error, then the error.
    const failing = stream.count({ n: 10, failAt: 2 });
    const before: unknown[] = [];
    const streamError = await rejection(
      (async () => {
        for await (const item of failing) before.push(item);
      })(),
    );
    expect(before).toEqual([{ i: 0 }, { i: 1 }]);
    expect(streamError).toMatchObject({ code: RpcCode.RESOURCE_EXHAUSTED, retryAfterMs: 10 });
  });

  it('services without a .proto go through the envelope: any msgpack value, streams and trailers', async () => {
    const plainService = client.proxy<PlainApi>('test.Plain');
    const value = { text: 'héllo 🚀', nested: [1, 2.5, null, true, { deep: 'x'.repeat(1000) }], bytes: new Uint8Array([0, 1, 255]), big: 2 ** 40 };
    expect(await plainService.echo(value)).toEqual(value);
    const call = plainService.repeat({ value: 'tok', times: 3 });
    const out: unknown[] = [];
    for await (const item of call) out.push(item);
    expect(out).toEqual(['tok', 'tok', 'tok']);
    await expect(call.trailer).resolves.toEqual({ times: 3 });
    // json through the same envelope (it names its serializer).
    const json = await createClient({ registry: `file://${registryDir.dir}`, transport: grpcTransport, serializer: 'json', config: false });
    try {
      expect(await json.proxy<PlainApi>('test.Plain').echo({ a: [1, 'two'] })).toEqual({ a: [1, 'two'] });
    } finally {
      await json.close();
    }
  });

  it('awaiting a streaming method, or iterating a unary one, through the envelope is refused at once with the fix, as over tcp', async () => {
    const plainService = client.proxy<PlainApi>('test.Plain');
    const started = Date.now();
    const awaited = (await rejection(plainService.repeat({ value: 'x', times: 3 }) as unknown as Promise<unknown>)) as RpcError;
    expect(awaited.code).toBe(RpcCode.FAILED_PRECONDITION);
    expect(awaited.message).toMatch(/test\.Plain\.repeat is a server-streaming method: iterate the call/);
    const iterated = (await rejection(
      (async () => {
        for await (const _ of plainService.echo(1) as unknown as AsyncIterable<unknown>);
      })(),
    )) as RpcError;
    expect(iterated.message).toMatch(/test\.Plain\.echo is a unary method: await the call/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("call metadata arrives as gRPC headers, without gRPC's own", async () => {
    const who = await client
      .proxy<PlainApi>('test.Plain')
      .whoami(undefined, { metadata: { 'x-tenant': 'acme', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    expect(who.metadata).toEqual({ 'x-tenant': 'acme', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(who.peer).toBe('127.0.0.1');
    const bad = await rejection(client.proxy<PlainApi>('test.Plain').whoami(undefined, { metadata: { 'bad key': 'x' } }));
    expect(bad).toMatchObject({ code: RpcCode.INVALID_ARGUMENT });
    expect(bad.message).toMatch(/metadata cannot be sent over grpc/);
  });

  it('cancellation and deadlines reach the provider handler', async () => {
    const stream = client.proxy<StreamApi>('test.Stream');
    let taken = 0;
    for await (const _ of stream.count({ n: 10_000, delayMs: 10 })) if (++taken === 3) break;
    const stats = await readWhen(
      () => streamStats.stats(),
      (seen) => seen.finallyRan > 0,
      "the generator's finally block",
    );
    expect(stats).toMatchObject({ started: 1, aborted: 1, finallyRan: 1 });
    const started = Date.now();
    const error = await rejection(client.proxy<EchoApi>('test.Echo').sleep({ ms: 10_000 }, { timeoutMs: 300 }));
    expect(error).toMatchObject({ code: RpcCode.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(3000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const cancelled = await rejection(client.proxy<EchoApi>('test.Echo').sleep({ ms: 10_000 }, { signal: controller.signal }));
    expect(cancelled).toMatchObject({ code: RpcCode.CANCELLED });
  });

  it('a message larger than the provider accepts is RESOURCE_EXHAUSTED, and the connection stays usable', async () => {
    const plainService = client.proxy<PlainApi>('test.Plain');
    const error = await rejection(plainService.echo('x'.repeat(9 * 1024 * 1024)));
    expect(error).toMatchObject({ code: RpcCode.RESOURCE_EXHAUSTED });
    await expect(plainService.echo('small')).resolves.toBe('small');
  });
});

describe('a shuttle consumer calling a gRPC server with no shuttle code', () => {
  let server: Child;
  let client: RpcClient;
  const cancelled: unknown[] = [];
  beforeAll(async () => {
    server = await startFixture('plain-grpc-server');
    createInterface({ input: server.process.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as { cancelled?: string };
      if (event.cancelled !== undefined) cancelled.push(event);
    });
    client = await createClient({ registry: server.url, transport: grpcTransport, timeoutMs: 10_000, config: false });
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it('unary, streaming and error statuses through the typed proxy', async () => {
    await expect(client.proxy<EchoApi>('test.Echo').add({ a: 5, b: 6 })).resolves.toEqual({ sum: 11 });
    const items = [];
    for await (const item of client.proxy<StreamApi>('test.Stream').count({ n: 3 })) items.push(item);
    expect(items).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
    const error = await rejection(client.proxy<EchoApi>('test.Echo').fail({ code: RpcCode.NOT_FOUND, message: 'no such model' }));
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: RpcCode.NOT_FOUND, rawMessage: 'no such model' });
  });

  it("a shuttle deadline is the server's grpc-timeout; a cancel reaches the server", async () => {
    const error = await rejection(client.proxy<EchoApi>('test.Echo').sleep({ ms: 10_000 }, { timeoutMs: 200 }));
    expect(error).toMatchObject({ code: RpcCode.DEADLINE_EXCEEDED });
    await waitUntil(() => cancelled.some((event) => (event as { cancelled: string }).cancelled === 'Sleep'), 'the server to see the deadline', 3000);
    let taken = 0;
    for await (const _ of client.proxy<StreamApi>('test.Stream').count({ n: 10_000, delayMs: 10 })) if (++taken === 2) break;
    await waitUntil(() => cancelled.some((event) => (event as { cancelled: string }).cancelled === 'Count'), 'the server to see the cancel', 3000);
  });

  it('awaiting a streaming rpc, or iterating a unary one, is refused before anything is sent', async () => {
    const unaryAsStream = await rejection(client.proxy<StreamApi>('test.Stream').count({ n: 1 }) as unknown as Promise<unknown>);
    expect(unaryAsStream).toMatchObject({ code: RpcCode.FAILED_PRECONDITION });
    expect(unaryAsStream.message).toMatch(/server-streaming rpc: iterate the call/);
  });
});

describe('failover over gRPC', () => {
  it('idempotent calls keep succeeding when one of two providers is killed', async () => {
    const second = await startFixture('provider', { PROVIDER_GRPC: '1', SHUTTLE_REGISTRY: `file://${registryDir.dir}` });
    const addresses = new Set<string>();
    const client = await createClient({
      registry: `file://${registryDir.dir}`,
      transport: grpcTransport,
      loadbalance: 'round-robin',
      onRoute: (event) => addresses.add(event.decision.provider.address),
      timeoutMs: 5000,
      config: false,
    });
    try {
      const echo = client.proxy<EchoApi>('test.Echo');
      // 100 calls first, so round robin has used both providers.
      for (let i = 0; i < 100; i++) await echo.add({ a: i, b: 0 });
      // Round robin went to both providers, each at its grpc port.
      const secondGrpc = (second.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
      expect([...addresses].sort()).toEqual([`127.0.0.1:${grpcPort}`, `127.0.0.1:${secondGrpc}`].sort());
      second.process.kill('SIGKILL');
      // Steady load from 4 callers (a burst larger than the retry budget would be shed by
      // design): every call succeeds, the ones that hit the dead provider by failing over.
      const sums = await Promise.all(
        Array.from({ length: 4 }, async (_, worker) => {
          const out: number[] = [];
          for (let i = 0; i < 15; i++) out.push((await echo.add({ a: worker * 100 + i, b: 1 })).sum);
          return out;
        }),
      );
      expect(sums).toEqual(Array.from({ length: 4 }, (_, worker) => Array.from({ length: 15 }, (_, i) => worker * 100 + i + 1)));
    } finally {
      await client.close();
      await second.stop();
    }
  });
});

describe('TLS', () => {
  let certs: string;
  beforeAll(() => {
    certs = makeCertificates();
  });
  const tlsClient = async (port: number, tls: Record<string, string>) =>
    createClient({
      registry: `shuttle://127.0.0.1:${port}`,
      transport: { type: 'grpc', options: { protoFiles: [protoFile], tls } },
      timeoutMs: 5000,
      connectTimeoutMs: 2000,
      cluster: 'failfast',
      config: false,
    });

  it('a TLS provider is callable by a plain grpc-js client and a shuttle consumer trusting its CA, and refuses plaintext', async () => {
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: certs });
    const port = (secure.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const stubs = plainStubs(`127.0.0.1:${port}`, grpc.credentials.createSsl(readFileSync(`${certs}/ca.crt`)));
    const clients: RpcClient[] = [];
    try {
      const client = await tlsClient(port, { ca: `${certs}/ca.crt` });
      clients.push(client);
      const plaintext = await createClient({
        registry: `shuttle://127.0.0.1:${port}`,
        transport: grpcTransport,
        timeoutMs: 3000,
        connectTimeoutMs: 1000,
        cluster: 'failfast',
        config: false,
      });
      clients.push(plaintext);
      await expect(unary(stubs.echo, 'Add', { a: 1, b: 1 })).resolves.toEqual({ sum: 2 });
      await expect(client.proxy<EchoApi>('test.Echo').add({ a: 2, b: 2 })).resolves.toEqual({ sum: 4 });
      const refused = await rejection(plaintext.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }));
      expect(refused).toMatchObject({ code: RpcCode.UNAVAILABLE });
    } finally {
      stubs.echo.close();
      stubs.stream.close();
      await Promise.all(clients.map((client) => client.close()));
      await secure.stop();
    }
  });

  it('a TLS provider completes the handshake of a connection made the moment it has started', async () => {
    // grpc-js reads certificate files asynchronously and drops the connections it is handed
    // before they are read: the provider must not listen (nor announce itself) until then.
    for (let round = 0; round < 3; round++) {
      const server = await createServer({
        services: [new EchoService()],
        registry: `memory://grpc-tls-first-${process.pid}-${round}`,
        transport: { type: 'grpc', options: { protoFiles: [protoFile], tls: { cert: `${certs}/server.crt`, key: `${certs}/server.key` } } },
      });
      try {
        const port = server.endpoints.find((endpoint) => endpoint.protocol === 'grpc')!.port;
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ca: readFileSync(`${certs}/ca.crt`),
          ALPNProtocols: ['h2'],
          checkServerIdentity: () => undefined,
        });
        const outcome = await new Promise<string>((resolve) => {
          socket.once('secureConnect', () => resolve(`secure ${socket.alpnProtocol}`));
          socket.once('error', (error) => resolve(error.message));
          socket.once('close', () => resolve('closed'));
          setTimeout(() => resolve('no handshake within 5 s'), 5000).unref();
        });
        socket.destroy();
        expect(outcome).toBe('secure h2');
      } finally {
        await server.close();
      }
    }
  });

  it('a TLS handshake that does not finish is closed within frameTimeoutMs; a good client still calls', async () => {
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: certs, PROVIDER_LIMITS: JSON.stringify({ frameTimeoutMs: 600 }) });
    const port = (secure.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const client = await tlsClient(port, { ca: `${certs}/ca.crt` });
    try {
      // Nothing at all, and the first bytes of a ClientHello (a TLS record header announcing
      // more than is sent): each socket is closed by the provider, not held for 120 s.
      const closedAfter = (bytes: Buffer): Promise<number> =>
        new Promise((resolve) => {
          const started = Date.now();
          const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
          socket.on('error', () => {});
          socket.resume();
          socket.once('close', () => resolve(Date.now() - started));
          setTimeout(() => socket.destroy(), 10_000).unref();
        });
      const took = await Promise.all([closedAfter(Buffer.alloc(0)), closedAfter(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]))]);
      for (const ms of took) expect(ms).toBeGreaterThanOrEqual(500);
      for (const ms of took) expect(ms).toBeLessThan(3000);
      await expect(client.proxy<EchoApi>('test.Echo').add({ a: 2, b: 3 })).resolves.toEqual({ sum: 5 });
    } finally {
      await client.close();
      await secure.stop();
    }
  });

  it('TLS mistakes fail with the reason and the fix: plaintext to TLS, TLS to plaintext, a wrong CA, no client certificate', async () => {
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: certs, PROVIDER_GRPC_MTLS: '1' });
    const plainProvider = await startFixture('provider', { PROVIDER_GRPC: '1' });
    const portOf = (child: Child): number => (child.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const clients: RpcClient[] = [];
    const failure = async (port: number, tls: Record<string, string> | undefined): Promise<Error> => {
      const client =
        tls === undefined
          ? await createClient({
              registry: `shuttle://127.0.0.1:${port}`,
              transport: grpcTransport,
              timeoutMs: 5000,
              connectTimeoutMs: 2000,
              cluster: 'failfast',
              config: false,
            })
          : await tlsClient(port, tls);
      clients.push(client);
      const error = await rejection(client.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }));
      expect(error).toMatchObject({ code: RpcCode.UNAVAILABLE });
      return error;
    };
    try {
      expect((await failure(portOf(secure), undefined)).message).toMatch(
        /cannot connect to 127\.0\.0\.1:\d+: closed by the provider before HTTP\/2 started \(a provider that requires TLS closes plaintext connections this way; set tls on this client's grpc transport/,
      );
      expect((await failure(portOf(plainProvider), { ca: `${certs}/ca.crt` })).message).toMatch(
        /TLS with 127\.0\.0\.1:\d+ failed: wrong version number \(does the provider serve TLS\?\)/,
      );
      expect((await failure(portOf(secure), { ca: `${certs}/other-ca.crt` })).message).toMatch(
        /TLS with 127\.0\.0\.1:\d+ failed: (unable to verify the first certificate|self-signed certificate in certificate chain) \(is ca the CA that signed the provider's certificate\?\)/,
      );
      expect((await failure(portOf(secure), { ca: `${certs}/ca.crt` })).message).toMatch(
        /TLS with 127\.0\.0\.1:\d+ failed: .*certificate required \(the provider requires a client certificate: set cert and key\)/,
      );
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await Promise.all([secure.stop(), plainProvider.stop()]);
    }
  });

  it('TLS to an IP address sends no SNI: no DEP0123 warning, and the certificate is still checked', async () => {
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: certs });
    const port = (secure.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    // Its own process: Node prints a deprecation once per process, and this one has made
    // TLS connections with plain grpc-js already.
    const script = `
      import { createClient } from 'shuttle-rpc';
      const call = async (ca) => {
        const client = await createClient({ registry: 'shuttle://127.0.0.1:${port}', transport: { type: 'grpc', options: { protoFiles: [${JSON.stringify(protoFile)}], tls: { ca } } }, timeoutMs: 5000, cluster: 'failfast', config: false });
        try { return await client.proxy('test.Echo').add({ a: 2, b: 3 }); } catch (error) { return error.message; } finally { await client.close(); }
      };
      console.log(JSON.stringify([await call(${JSON.stringify(`${certs}/ca.crt`)}), await call(${JSON.stringify(`${certs}/other-ca.crt`)})]));`;
    try {
      const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: fileURLToPath(new URL('../../', import.meta.url)),
        timeout: 30_000,
      });
      const [trusted, untrusted] = JSON.parse(stdout) as [unknown, string];
      expect(trusted).toEqual({ sum: 5 });
      expect(untrusted).toMatch(/TLS with 127\.0\.0\.1:\d+ failed/);
      expect(stderr).not.toMatch(/DEP0123/);
    } finally {
      await secure.stop();
    }
  });

  it('a certificate rotated on disk is served to new connections while a call in flight completes', async () => {
    const dir = makeCertificates();
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: dir });
    const port = (secure.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const serial = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(`${dir}/ca.crt`), ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getPeerCertificate().serialNumber.toUpperCase());
          socket.end();
        });
        socket.on('error', reject);
      });
    const stubs = plainStubs(`127.0.0.1:${port}`, grpc.credentials.createSsl(readFileSync(`${dir}/ca.crt`)));
    try {
      const before = await serial();
      const inFlight = unary<{ aborted: boolean }>(stubs.echo, 'Sleep', { ms: 2500 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const renewed = renewServerCertificate(dir);
      expect(renewed).not.toBe(before);
      // Each check opens a TLS connection: every 250 ms is often enough.
      await waitUntil(async () => (await serial()) === renewed, 'new connections to be served the renewed certificate', 6000, 250);
      await expect(inFlight).resolves.toEqual({ aborted: false });
    } finally {
      stubs.echo.close();
      stubs.stream.close();
      await secure.stop();
    }
  });

  it('mutual TLS: a client certificate signed by the CA is required', async () => {
    const secure = await startFixture('provider', { PROVIDER_GRPC: '1', PROVIDER_GRPC_TLS: certs, PROVIDER_GRPC_MTLS: '1' });
    const port = (secure.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const stubs = plainStubs(
      `127.0.0.1:${port}`,
      grpc.credentials.createSsl(readFileSync(`${certs}/ca.crt`), readFileSync(`${certs}/client.key`), readFileSync(`${certs}/client.crt`)),
    );
    const clients: RpcClient[] = [];
    try {
      const withCert = await tlsClient(port, { ca: `${certs}/ca.crt`, cert: `${certs}/client.crt`, key: `${certs}/client.key` });
      clients.push(withCert);
      const withoutCert = await tlsClient(port, { ca: `${certs}/ca.crt` });
      clients.push(withoutCert);
      await expect(withCert.proxy<EchoApi>('test.Echo').add({ a: 3, b: 4 })).resolves.toEqual({ sum: 7 });
      await expect(unary(stubs.echo, 'Add', { a: 5, b: 5 })).resolves.toEqual({ sum: 10 });
      expect(await rejection(withoutCert.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }))).toMatchObject({ code: RpcCode.UNAVAILABLE });
    } finally {
      stubs.echo.close();
      stubs.stream.close();
      await Promise.all(clients.map((client) => client.close()));
      await secure.stop();
    }
  });
});

describe('graceful drain over gRPC', () => {
  it('SIGTERM lets the call in flight finish, then the provider exits', async () => {
    const draining = await startFixture('provider', { PROVIDER_GRPC: '1' });
    const port = (draining.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const stubs = plainStubs(`127.0.0.1:${port}`);
    try {
      const inFlight = unary<{ aborted: boolean }>(stubs.echo, 'Sleep', { ms: 600 });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const exited = new Promise<number>((resolve) => draining.process.once('exit', () => resolve(Date.now())));
      const stoppedAt = Date.now();
      draining.process.kill('SIGTERM');
      await expect(inFlight).resolves.toEqual({ aborted: false });
      // Exited on its own once drained (stop() would SIGKILL only after its grace time).
      expect((await exited) - stoppedAt).toBeLessThan(2500);
    } finally {
      stubs.echo.close();
      stubs.stream.close();
      await draining.stop();
    }
  });
});
