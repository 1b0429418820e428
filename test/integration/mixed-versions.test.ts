import { chmod, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createServer } from 'shuttle-rpc';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { FrameFlag, FrameType, encodeFrame } from '../../src/transport/frame.js';
import { WINDOW_META, encodeChunkFrame, encodeEndFrame, encodeWindowUpdate } from '../../src/transport/stream-frames.js';
import { decodeRequestHead } from '../../src/transport/envelope.js';
import { Packr } from 'msgpackr';
import { TIMEOUT_META } from '../../src/transport/transport.js';
import { requestFrame, unpack } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { isolatedTmpdir } from '../helpers/tmp.js';

/*
 * Peers from earlier builds, as they behave on the wire, against this build. A rolling upgrade
 * runs old and new processes side by side for minutes; docs/PROTOCOL.md ("Compatibility")
 * says what every build of protocol version 1 keeps working with.
 */

interface StreamOutcome {
  readonly chunks: number;
  readonly end: 'ok' | 'error' | 'none';
  readonly count?: number;
}

/**
 * A consumer as earlier builds of this project wrote it: a streaming REQUEST with the window it
 * was configured with (`shuttle-window`), no load-report opt-in, and credit granted back in
 * half-window steps as its reader takes chunks. Resolves when the stream ends or `waitMs` pass.
 */
function earlierConsumerStream(port: number, request: unknown, window: number, waitMs: number): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    let chunks = 0;
    let consumed = 0;
    const finish = (outcome: StreamOutcome): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ chunks, end: 'none' }), waitMs);
    socket.on('error', () => finish({ chunks, end: 'none' }));
    socket.on('connect', () => {
      const meta = { [WINDOW_META]: String(window), [TIMEOUT_META]: String(waitMs + 5000) };
      const frame = requestFrame(1, 'count', request, { service: 'test.Stream', meta });
      frame[4] = FrameFlag.STREAM;
      socket.write(frame);
    });
    socket.on('data', (data: Buffer) =>
      decoder.push(data, (frame) => {
        if (frame.type === FrameType.STREAM_CHUNK) {
          chunks++;
          consumed += frame.body.length + 20;
          if (consumed >= window / 2) {
            socket.write(encodeWindowUpdate(1, consumed));
            consumed = 0;
          }
        } else if (frame.type === FrameType.STREAM_END) {
          const ok = frame.status === 0;
          finish({ chunks, end: ok ? 'ok' : 'error', ...(ok ? { count: frame.body.readUInt32BE(0) } : {}) });
        } else if (frame.type === FrameType.RESPONSE || frame.type === FrameType.GOAWAY) {
          finish({ chunks, end: 'error' });
        }
      }),
    );
  });
}

describe('peers from earlier builds', () => {
  let provider: Child;
  beforeAll(async () => {
    provider = await startFixture('provider', { PROVIDER_STREAM: '1' });
  });
  afterAll(async () => {
    await provider?.stop();
  });

  it('a consumer asking for a stream window over twice the provider cap (4 MiB, cap 1 MiB) gets the whole stream', async () => {
    // 400 chunks of 10 kB: 4 MB, past the 1 MiB cap. The consumer grants credit back only after
    // 2 MiB, so a provider that stopped at its cap waited for a grant that never came.
    const outcome = await earlierConsumerStream(provider.port, { n: 400, size: 10_000 }, 4 * 1024 * 1024, 8000);
    expect(outcome).toEqual({ chunks: 400, end: 'ok', count: 400 });
  });

  it('the largest window a consumer may ask for (2^31 - 1) streams to the end as well', async () => {
    const outcome = await earlierConsumerStream(provider.port, { n: 300, size: 10_000 }, 2 ** 31 - 1, 8000);
    expect(outcome).toEqual({ chunks: 300, end: 'ok', count: 300 });
  });

  it("this build's consumer configured with a 4 MiB window streams past the provider's cap", async () => {
    const client = await createClient({ registry: `shuttle://127.0.0.1:${provider.port}`, config: false, streamWindowBytes: 4 * 1024 * 1024, timeoutMs: 8000 });
    try {
      const stream = client.proxy<{ count(request: { n: number; size: number }): AsyncGenerator<{ i: number }, { count: number }> }>('test.Stream', {
        version: '1.0.0',
      });
      let received = 0;
      const call = stream.count({ n: 400, size: 10_000 });
      for await (const chunk of call) expect(chunk.i).toBe(received++);
      expect(received).toBe(400);
      expect(await call.trailer).toEqual({ count: 400 });
    } finally {
      await client.close();
    }
  });

  it('a request whose msgpack has a map key "__proto__" (such a consumer did not check it) is refused naming it, never served renamed', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: provider.port });
    const decoder = new FrameDecoder(1 << 20);
    const answers: Array<{ status: number; body: Buffer }> = [];
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => decoder.push(data, (frame) => answers.push({ status: frame.status, body: Buffer.from(frame.body) })));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // { __proto__: { x: 1 } } as msgpack: what JSON.parse gives for '{"__proto__":{"x":1}}'.
    const payload = Buffer.concat([Buffer.from([0x81, 0xa9]), Buffer.from('__proto__'), Buffer.from([0x81, 0xa1, 0x78, 0x01])]);
    socket.write(requestFrame(1, 'echo', payload));
    try {
      await waitUntil(() => answers.length > 0, 'the answer', 3000);
    } finally {
      socket.destroy();
    }
    expect(answers[0]!.status).toBe(3);
    expect(JSON.parse(answers[0]!.body.toString()).message).toMatch(/map key "__proto__" is not accepted/);
  });

  it('a HEARTBEAT from such a consumer is answered, and its GOAWAY on close is taken as a close', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: provider.port });
    const decoder = new FrameDecoder(1 << 20);
    const frames: Array<{ type: number; body: Buffer }> = [];
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => decoder.push(data, (frame) => frames.push({ type: frame.type, body: Buffer.from(frame.body) })));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(encodeFrame(FrameType.HEARTBEAT, 0));
    socket.write(requestFrame(1, 'echo', 'hi'));
    await waitUntil(() => frames.length >= 2, 'the HEARTBEAT_ACK and the RESPONSE', 3000);
    socket.end(encodeFrame(FrameType.GOAWAY, 0));
    await closed;
    expect(frames.map((frame) => frame.type)).toEqual([FrameType.HEARTBEAT_ACK, FrameType.RESPONSE]);
    expect(unpack(frames[1]!.body)).toBe('hi');
  });
});

describe('the default file registry shared with builds that name its folder by the user name', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Points the default folder at a fresh temp dir (TMPDIR; no XDG_RUNTIME_DIR); returns that dir. */
  async function isolatedTemp(): Promise<string> {
    const { base, restore } = await isolatedTmpdir();
    cleanups.push(restore);
    return base;
  }

  it('a consumer finds the provider such a build announced there, and its own provider announces there too', async () => {
    const base = await isolatedTemp();
    // The folder as those builds make it: named by the user, mode 0755 (mkdir under umask 022).
    const folder = path.join(base, `shuttle-registry-${userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_')}`);
    await mkdir(path.join(folder, 'services', 'test.Echo'), { recursive: true });
    await mkdir(path.join(folder, 'load'));
    await chmod(folder, 0o755);
    // The earlier build's provider: a live process, announced by the record and load file such a
    // build writes (captured from one), kept fresh as its heartbeat would.
    const earlier = await startFixture('provider');
    cleanups.push(() => earlier.stop());
    const address = `127.0.0.1%3A${earlier.port}`;
    const recordPath = path.join(folder, 'services', 'test.Echo', `1.0.0@_@${address}.json`);
    const loadPath = path.join(folder, 'load', `${address}.json`);
    await writeFile(
      recordPath,
      JSON.stringify({
        service: 'test.Echo',
        version: '1.0.0',
        group: '',
        host: '127.0.0.1',
        port: earlier.port,
        protocol: 'tcp',
        serializers: ['msgpack', 'json', 'protobuf'],
        methods: [
          { name: 'echo', stream: false, idempotent: true },
          { name: 'pid', stream: false, idempotent: false },
        ],
        weight: 100,
        startTime: Date.now() - 60_000,
        metadata: { fixture: true, zone: 'test' },
      }),
    );
    await writeFile(
      loadPath,
      JSON.stringify({ running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, timestamp: Date.now(), draining: false }),
    );
    const heartbeat = setInterval(() => {
      const now = new Date();
      void utimes(recordPath, now, now).catch(() => {});
      void utimes(loadPath, now, now).catch(() => {});
    }, 300);
    cleanups.push(() => clearInterval(heartbeat));

    const client = await createClient({ config: false, timeoutMs: 3000 });
    cleanups.push(() => client.close());
    expect(await client.proxy<EchoApi>('test.Echo', { version: '1.0.0' }).pid()).toBe(earlier.announced['pid']);

    // This build's provider announces where such a build's consumers look.
    const server = await createServer({ services: [new EchoService()], config: false });
    cleanups.push(() => server.close());
    const names = await readdir(path.join(folder, 'services', 'test.Echo'));
    expect(names).toContain(`1.0.0@_@127.0.0.1%3A${new URL(server.url).port}.json`);
  });

  it('such a folder made by someone else, or left writable by others, is not chosen', async () => {
    const base = await isolatedTemp();
    const folder = path.join(base, `shuttle-registry-${userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_')}`);
    await mkdir(folder);
    await chmod(folder, 0o777);
    const server = await createServer({ services: [new EchoService()], config: false });
    cleanups.push(() => server.close());
    expect(await readdir(folder)).toEqual([]);
    expect(await readdir(path.join(base, `shuttle-registry-${process.getuid!()}`, 'services'))).toEqual(['test.Echo']);
  });
});

describe('load snapshots read by builds that take at most 4 KiB of one', () => {
  it("a provider's drain is published in a snapshot of at most 4 KiB, whatever prefix-cache summary it published before", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'shuttle-versions-load-'));
    let draining = false;
    // The largest summary a worker publishes: 2,048 hashes, about 22 KiB of JSON.
    const summary = Array.from({ length: 2048 }, (_, i) => 0x3fffff00 - i);
    const server = await createServer({
      services: [new EchoService()],
      config: false,
      registry: `file://${dir}`,
      loadIntervalMs: 50,
      load: () => ({ draining, cachedPrefixes: summary }),
    });
    try {
      const loadFile = path.join(dir, 'load', `127.0.0.1%3A${new URL(server.url).port}.json`);
      const published = async (): Promise<string> => readFile(loadFile, 'utf8').catch(() => '');
      await waitUntil(async () => (await published()).includes(String(summary[2047])), 'the summary published', 3000);
      // An engine adapter says draining while its engine is down; a closing provider does too.
      draining = true;
      await waitUntil(async () => (await published()).includes('"draining":true'), 'the drain published', 3000);
      const text = await published();
      // How a reader that refuses snapshots over 4 KiB takes it.
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
      expect(JSON.parse(text)).toMatchObject({ draining: true, kvUsage: 0 });
      expect(JSON.parse(text)).not.toHaveProperty('cachedPrefixes');
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A provider as earlier builds wrote it: it caps a stream's credit at 1 MiB whatever the consumer
 * asked for, sends chunks while it has credit, and then waits for WINDOW_UPDATEs. Answers every
 * streaming REQUEST with `chunks` chunks of `size` bytes.
 */
async function cappingProvider(chunks: number, size: number): Promise<{ port: number; close(): void }> {
  const packr = new Packr({ useRecords: false, moreTypes: true });
  const cap = 1024 * 1024;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    const streams = new Map<number, { credit: number; sent: number; pump(): void }>();
    socket.on('data', (data: Buffer) =>
      decoder.push(data, (frame) => {
        // As every build does: the consumer's connection waits for this answer to its first.
        if (frame.type === FrameType.HEARTBEAT) {
          socket.write(encodeFrame(FrameType.HEARTBEAT_ACK, frame.requestId));
          return;
        }
        if (frame.type === FrameType.WINDOW_UPDATE) {
          const stream = streams.get(frame.requestId);
          if (stream === undefined) return;
          stream.credit = Math.min(stream.credit + frame.body.readUInt32BE(0), cap);
          stream.pump();
          return;
        }
        if (frame.type !== FrameType.REQUEST) return;
        const id = frame.requestId;
        const asked = Number(decodeRequestHead(frame.body).head.meta[WINDOW_META] ?? 65_535);
        const pad = 'x'.repeat(size);
        const stream = {
          credit: Math.min(asked, cap),
          sent: 0,
          pump(): void {
            while (stream.credit > 0 && stream.sent < chunks) {
              const chunk = encodeChunkFrame(id, 1, stream.sent, packr.pack({ i: stream.sent, pad }));
              stream.credit -= chunk.length;
              stream.sent++;
              socket.write(chunk);
            }
            if (stream.sent === chunks) {
              socket.write(encodeEndFrame(id, 1, chunks, packr.pack({ count: chunks })));
              streams.delete(id);
            }
          },
        };
        streams.set(id, stream);
        stream.pump();
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('providers from earlier builds', () => {
  it("this build's consumer with a 4 MiB window streams to the end from a provider that caps every stream at 1 MiB", async () => {
    const provider = await cappingProvider(400, 10_000);
    const client = await createClient({ registry: `shuttle://127.0.0.1:${provider.port}`, config: false, streamWindowBytes: 4 * 1024 * 1024, timeoutMs: 6000 });
    try {
      const stream = client.proxy<{ count(request: { n: number }): AsyncGenerator<{ i: number }, { count: number }> }>('test.Stream', { version: '1.0.0' });
      let received = 0;
      const call = stream.count({ n: 400 });
      for await (const chunk of call) expect(chunk.i).toBe(received++);
      expect(received).toBe(400);
      expect(await call.trailer).toEqual({ count: 400 });
    } finally {
      await client.close();
      provider.close();
    }
  });
});
