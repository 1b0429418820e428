import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer } from 'shuttle-rpc';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { FrameFlag, FrameType, encodeFrame } from '../../src/transport/frame.js';
import { encodeMeta, encodeRoute } from '../../src/transport/envelope.js';
import { ACCEPT_LOAD_META } from '../../src/transport/transport.js';
import { ENVELOPE_TYPE } from '../../src/transport/grpc/codec.js';
import { LOAD_TRAILER, VERSION_HEADER } from '../../src/transport/grpc/status.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { StreamService, type StreamApi } from '../fixtures/stream-service.js';
import { logCollector } from '../helpers/log-lines.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Providers attach their load to answers (a LOAD frame after the answer, at most every
 * 10 ms per connection): a consumer with no registry load at all still sees each provider's
 * load as of its latest answers; and a provider's malformed report is dropped with one warning,
 * never failing the answer it came with.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('load attached to answers', () => {
  it('a consumer without registry load sees the provider load of its latest answers, unary and stream alike', async () => {
    let waiting = 7;
    // The stream service's relay client is never used by count().
    const relay = await createClient({ registry: 'shuttle://127.0.0.1:1', config: false });
    cleanups.push(() => relay.close());
    const server = await createServer({
      services: [new EchoService(), new StreamService(relay)],
      registry: false,
      config: false,
      load: () => ({ waiting, kvUsage: 0.5, tokensPerSecond: 120 }),
    });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    // Direct URL: no registry channel, so nothing but the answers can carry load.
    expect(await echo.echo('a')).toBe('a');
    const first = client.providers()[0]!.load;
    expect(first).toMatchObject({ waiting: 7, kvUsage: 0.5, tokensPerSecond: 120, draining: false });
    expect(first!.receivedAt).toBeGreaterThan(Date.now() - 5000);
    expect(first!.cachedPrefixes).toBeUndefined();

    waiting = 3;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(await echo.echo('b')).toBe('b');
    expect(client.providers().find((provider) => provider.service === 'test.Echo')!.load).toMatchObject({ waiting: 3 });

    // A stream's end carries it too.
    waiting = 11;
    await new Promise((resolve) => setTimeout(resolve, 30));
    const call = client.proxy<StreamApi>('test.Stream', { version: '1.0.0' }).count({ n: 3 });
    let chunks = 0;
    for await (const _chunk of call) chunks++;
    expect(chunks).toBe(3);
    expect(client.providers().find((provider) => provider.service === 'test.Stream')!.load).toMatchObject({ waiting: 11 });
  });

  it('a consumer with a stream running hears the provider load between answers, every 50 ms, until its connection has carried nothing else for 2 s', async () => {
    let waiting = 1;
    const relay = await createClient({ registry: 'shuttle://127.0.0.1:1', config: false });
    cleanups.push(() => relay.close());
    const server = await createServer({ services: [new StreamService(relay)], registry: false, config: false, load: () => ({ waiting }) });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: server.url, config: false });
    cleanups.push(() => client.close());
    const streams = client.proxy<StreamApi>('test.Stream', { version: '1.0.0' });
    const load = () => client.providers().find((provider) => provider.service === 'test.Stream')?.load;
    // Two chunks 1.5 s apart: the stream runs that long with no answer in between.
    const call = streams.pushed({ n: 2, everyMs: 1500 });
    const iterator = call[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ i: 0 });
    waiting = 9;
    const changed = Date.now();
    await waitUntil(() => load()?.waiting === 9, 'a pushed report', 1000);
    expect(Date.now() - changed).toBeLessThan(1000);
    // The report is fresh, and keeps being: two reads 120 ms apart see two arrivals.
    const first = load()!.receivedAt!;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(load()!.receivedAt).toBeGreaterThan(first);
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next());
    // Nothing running, but a call ended lately: this consumer is still routing here, and hears
    // on for 2 s after its last answer; then the pushes stop.
    waiting = 4;
    await waitUntil(() => load()?.waiting === 4, 'a report after the stream ended', 1000);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const last = load()!.receivedAt;
    waiting = 5;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(load()).toMatchObject({ waiting: 4, receivedAt: last });
  });

  it('pushed reports never keep a consumer that stopped reading from the idle timeout', async () => {
    const relay = await createClient({ registry: 'shuttle://127.0.0.1:1', config: false });
    cleanups.push(() => relay.close());
    const server = await createServer({
      services: [new StreamService(relay)],
      registry: false,
      config: false,
      limits: { idleTimeoutMs: 1000 },
      load: () => ({ waiting: 1 }),
    });
    cleanups.push(() => server.close());
    // A consumer that asks for LOAD frames, opens a stream of large chunks, and never reads:
    // the stream stops at its credit, and nothing but pushes would cross the connection.
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.pause();
    socket.on('error', () => {});
    cleanups.push(() => void socket.destroy());
    // Watched from the provider's side: a paused socket does not see its peer close.
    await waitUntil(() => server.connections === 1, 'the provider to count the connection');
    const body = Buffer.concat([
      encodeRoute('test.Stream', '1.0.0', '', 'count'),
      encodeMeta({ [ACCEPT_LOAD_META]: '1' }),
      new Packr({ useRecords: false }).pack({ n: 1_000_000, size: 2000 }),
    ]);
    const started = Date.now();
    socket.write(encodeFrame(FrameType.REQUEST, 1, body, { serializer: 1, flags: FrameFlag.STREAM }));
    // Its last traffic is the stream's last chunk; pushes stop 2 s later, and the idle timeout
    // (1 s) closes it after the last push. Without the rule the pushes kept it open for minutes.
    await waitUntil(() => server.connections === 0, 'the provider to close the connection', 8000, 20);
    expect(Date.now() - started).toBeLessThan(1000 + 2000 + 2500);
  });

  it('over the grpc transport the report rides in the trailers of answers, at most once per 10 ms on a connection', async () => {
    let waiting = 5;
    const server = await createServer({ services: [new EchoService()], transport: 'grpc', registry: false, config: false, load: () => ({ waiting }) });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: `shuttle://127.0.0.1:${server.port}`, transport: 'grpc', config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    expect(await echo.echo('a')).toBe('a');
    await waitUntil(() => client.providers()[0]!.load?.waiting === 5, 'the first report');
    waiting = 2;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(await echo.echo('b')).toBe('b');
    await waitUntil(() => client.providers()[0]!.load?.waiting === 2, 'the second report');
    expect(client.providers()[0]!.load!.receivedAt).toBeGreaterThan(Date.now() - 5000);

    // Back-to-back answers on one connection, read by a bare grpc-js client: a report at most
    // every 10 ms, not one per answer.
    const raw = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => raw.close());
    const packr = new Packr({ useRecords: false, moreTypes: true });
    const request = Buffer.from(ENVELOPE_TYPE.encode(ENVELOPE_TYPE.create({ body: packr.pack(['x']), serializer: 'msgpack' })).finish());
    const metadata = new grpc.Metadata();
    metadata.set(VERSION_HEADER, '1.0.0');
    const identity = (bytes: Buffer): Buffer => bytes;
    let withReport = 0;
    const started = Date.now();
    for (let i = 0; i < 60; i++) {
      await new Promise<void>((resolve, reject) => {
        const call = raw.makeUnaryRequest('/test.Echo/echo', identity, identity, request, metadata, (error) => (error === null ? undefined : reject(error)));
        call.on('status', (status: grpc.StatusObject) => {
          if (status.metadata.get(LOAD_TRAILER).length > 0) withReport++;
          resolve();
        });
      });
    }
    const elapsed = Date.now() - started;
    expect(withReport).toBeGreaterThanOrEqual(1);
    expect(withReport).toBeLessThanOrEqual(Math.floor(elapsed / 10) + 1);
  });

  it('a malformed report is dropped with one warning naming the provider and the field; the answer is delivered', async () => {
    const packr = new Packr({ useRecords: false, moreTypes: true });
    const fine = { timestamp: Date.now(), running: 1, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining: false };
    const reports = [Buffer.from(JSON.stringify({ ...fine, running: -1 })), Buffer.from('not json'), Buffer.alloc(5000, 0x20)];
    let answered = 0;
    const server = net.createServer((socket) => {
      const decoder = new FrameDecoder(1 << 20);
      socket.on('data', (chunk: Buffer) =>
        decoder.push(chunk, (frame) => {
          if (frame.type === FrameType.HEARTBEAT) socket.write(encodeFrame(FrameType.HEARTBEAT_ACK, frame.requestId));
          if (frame.type !== FrameType.REQUEST) return;
          socket.write(encodeFrame(FrameType.LOAD, 0, reports[answered % reports.length], { serializer: 2 }));
          socket.write(encodeFrame(FrameType.RESPONSE, frame.requestId, packr.pack(`answer ${answered++}`), { serializer: 1 }));
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as net.AddressInfo).port;
    const logs = logCollector();
    const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, config: false, log: { stream: logs.stream } });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    for (let i = 0; i < 6; i++) expect(await echo.echo(i)).toBe(`answer ${i}`);
    expect(client.providers()[0]!.load).toBeUndefined();
    await waitUntil(() => logs.lines.length > 0, 'the warning');
    const warnings = logs.lines.filter((line) => String(line['msg']).includes('load report'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, provider: `127.0.0.1:${port}`, reason: 'running: -1 is not a finite number >= 0' });
  });
});
