import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type Proxied, type RpcClient } from 'shuttle-rpc';
import { FrameType, encodeFrame } from '../../src/transport/frame.js';
import { WINDOW_META, encodeWindowUpdate } from '../../src/transport/stream-frames.js';
import type { EchoApi } from '../fixtures/services.js';
import { afterOpening } from '../helpers/frames.js';
import { requestFrame } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * Attacks on what a peer can make a provider hold, each against a provider process with default
 * options for ATTACK_SECONDS (10 by default). Every attack must leave the victim alive, its RSS
 * at most 64 MB above what it was after warming up, and a well-behaved client on its own
 * connection answered with p99 under 100 ms and no failure. The attackers are deliberately
 * cheap (they mostly do not read): the victim's own memory is what is measured.
 */
const SECONDS = Number(process.env['ATTACK_SECONDS'] ?? 10);
const RSS_BUDGET = 64 * 1024 * 1024;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

interface Victim {
  readonly child: Child;
  readonly client: RpcClient;
  readonly echo: Proxied<EchoApi>;
  readonly baseline: number;
  /** The victim's RSS now. */
  rss(): number;
}

/** A provider process with default limits, warmed up by a good client, and its baseline RSS. */
async function victim(env: Record<string, string> = {}): Promise<Victim> {
  const child = await startFixture('provider', { PROVIDER_STREAM: '1', ...env });
  cleanups.push(() => child.stop());
  const client = await createClient({ registry: child.url, timeoutMs: 5000, config: false });
  cleanups.push(() => client.close());
  const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
  for (let i = 0; i < 2000; i++) await echo.echo({ i, pad: 'x'.repeat(64) });
  const pid = child.announced['pid'] as number;
  return { child, client, echo, baseline: rssOf(pid), rss: () => rssOf(pid) };
}

/**
 * Calls echo one at a time for `ms` while the attack runs; samples the victim's RSS. Returns the
 * latencies, failures and the highest RSS seen.
 */
async function goodClientDuring(target: Victim, ms: number): Promise<{ p99: number; calls: number; failures: string[]; peakRss: number }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let peakRss = target.rss();
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, target.rss());
    } catch {
      failures.push('the victim process is gone');
    }
  }, 100);
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const started = performance.now();
    try {
      await target.echo.echo({ ok: true });
      latencies.push(performance.now() - started);
    } catch (error) {
      failures.push((error as Error).message);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  clearInterval(sampler);
  latencies.sort((a, b) => a - b);
  return { p99: latencies[Math.floor(latencies.length * 0.99)] ?? Number.POSITIVE_INFINITY, calls: latencies.length, failures, peakRss };
}

function expectUnharmed(target: Victim, result: Awaited<ReturnType<typeof goodClientDuring>>): void {
  const grew = result.peakRss - target.baseline;
  console.log(`victim RSS +${(grew / 2 ** 20).toFixed(1)} MB, good client p99 ${result.p99.toFixed(1)} ms over ${result.calls} calls`);
  expect(result.failures).toEqual([]);
  expect(target.child.process.exitCode).toBeNull();
  expect(grew).toBeLessThan(RSS_BUDGET);
  expect(result.p99).toBeLessThan(100);
}

/**
 * A `sleep` request held by its handler for 30 s: `{ ms: 30000, pad: [50,000 x { x: 'abcdefgh' }] }`,
 * 600 KB on the wire, within every decode limit (~12x its size), ~7 MB decoded by the estimate.
 */
function heldRequestPayload(): Buffer {
  const record = [0x81, 0xa1, 0x78, 0xa8, ...Buffer.from('abcdefgh')];
  const records = Buffer.concat([Buffer.from([0xdd, 0, 0, 0, 0]), Buffer.alloc(record.length * 50_000)]);
  records.writeUInt32BE(50_000, 1);
  for (let i = 0; i < 50_000; i++) records.set(record, 5 + i * record.length);
  return Buffer.concat([Buffer.from([0x82, 0xa2, 0x6d, 0x73, 0xcd, 0x75, 0x30, 0xa3, 0x70, 0x61, 0x64]), records]);
}

/** A raw connection that never reads what the provider sends. */
async function deafSocket(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  socket.pause();
  cleanups.push(() => socket.destroy());
  return socket;
}

/**
 * Writes `frame` again and again for `ms`, `perBatch` frames at a time, never letting more than
 * 1 MB (or one batch) wait in this process.
 */
async function flood(socket: net.Socket, frame: (id: number) => Buffer, ms: number, perBatch = 200): Promise<number> {
  const until = Date.now() + ms;
  let id = 1;
  while (Date.now() < until && !socket.destroyed) {
    if (socket.writableLength < 1024 * 1024) {
      const batch: Buffer[] = [];
      for (let i = 0; i < perBatch; i++) batch.push(frame(id++));
      socket.write(Buffer.concat(batch));
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return id - 1;
}

describe('budgets: what a peer can make a provider hold', { timeout: (SECONDS + 30) * 1000 }, () => {
  it('unread answers to small requests: reading stops, memory stays flat', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    const [, result] = await Promise.all([flood(socket, (id) => requestFrame(id, 'nope', {}), SECONDS * 1000), goodClientDuring(target, SECONDS * 1000)]);
    expectUnharmed(target, result);
  });

  it('unread answers on 40 connections at once: the server-wide budget holds each to its fair share', async () => {
    const target = await victim();
    const sockets = await Promise.all(Array.from({ length: 40 }, () => deafSocket(target.child.port)));
    const [, result] = await Promise.all([
      Promise.all(sockets.map((socket) => flood(socket, (id) => requestFrame(id, 'blob', { bytes: 64 * 1024 }), SECONDS * 1000))),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    // Forty peers asking for work as fast as the kernel's buffers absorb the answers cost the
    // provider CPU (that is rate limiting's job, not a budget's) and, at any moment, one slice of
    // answers each (40 x 16 x 64 KiB, written and copied once) besides the 16 MiB of unsent
    // answers the server holds in all: bounded, whatever the attack's length, and the good
    // client is still served.
    const grew = result.peakRss - target.baseline;
    console.log(`victim RSS +${(grew / 2 ** 20).toFixed(1)} MB, good client p99 ${result.p99.toFixed(1)} ms over ${result.calls} calls`);
    expect(result.failures).toEqual([]);
    expect(target.child.process.exitCode).toBeNull();
    expect(grew).toBeLessThan(2 * RSS_BUDGET);
  });

  it('unread 1 MB answers: running calls cannot pile answers up behind a peer that reads nothing', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    const [, result] = await Promise.all([
      flood(socket, (id) => requestFrame(id, 'blob', { bytes: 1024 * 1024 }), SECONDS * 1000),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('a stream asking for a 2 GiB window and granting 4 GiB more, never read: capped by the socket budget', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    const streams = 200;
    for (let id = 1; id <= streams; id++) {
      socket.write(requestFrame(id, 'count', { n: 1e9, size: 4096 }, { service: 'test.Stream', meta: { [WINDOW_META]: '2147483647' } }));
      for (let i = 0; i < 4; i++) socket.write(encodeWindowUpdate(id, 0xffffffff));
    }
    // 2,000 more streams at the default window.
    const result = await Promise.all([
      flood(
        socket,
        (id) => (id <= 2000 ? requestFrame(streams + id, 'count', { n: 1e9, size: 1024 }, { service: 'test.Stream' }) : encodeFrame(FrameType.HEARTBEAT, 0)),
        SECONDS * 1000,
      ),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result[1]);
  });

  it('decode amplification: 8 MiB of empty maps is refused before it is built', async () => {
    const target = await victim();
    const socket = net.connect({ host: '127.0.0.1', port: target.child.port });
    cleanups.push(() => socket.destroy());
    const answers: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => answers.push(chunk));
    const bomb = Buffer.alloc(8 * 1024 * 1024 - 200, 0x80);
    bomb[0] = 0xdd;
    bomb.writeUInt32BE(bomb.length - 5, 1);
    const send = async (): Promise<void> => {
      const until = Date.now() + SECONDS * 1000;
      for (let id = 1; Date.now() < until; id++) {
        socket.write(requestFrame(id, 'sleep', bomb));
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    const [, result] = await Promise.all([send(), goodClientDuring(target, SECONDS * 1000)]);
    expectUnharmed(target, result);
    const text = Buffer.concat(answers).toString('latin1');
    expect(text).toContain('decode limit');
  });

  it('decoded requests held by slow handlers: a connection is not read past its decoded budget', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    // Each request is within every decode limit and is held by its handler for 30 s; together
    // they are far over a connection's budget of decoded requests.
    const payload = heldRequestPayload();
    const [, result] = await Promise.all([
      flood(socket, (id) => (id <= 40 ? requestFrame(id, 'sleep', payload) : encodeFrame(FrameType.HEARTBEAT, 0)), SECONDS * 1000),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('decoded requests held by slow handlers on 20 connections: the server-wide budget holds them all', async () => {
    const target = await victim();
    const sockets = await Promise.all(Array.from({ length: 20 }, () => deafSocket(target.child.port)));
    const payload = heldRequestPayload();
    const [, result] = await Promise.all([
      Promise.all(
        sockets.map((socket) => flood(socket, (id) => (id <= 10 ? requestFrame(id, 'sleep', payload) : encodeFrame(FrameType.HEARTBEAT, 0)), SECONDS * 1000)),
      ),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('requests with 7.8 MB of metadata and a one-byte payload, held by slow handlers: the metadata is priced with the request', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    const meta: Record<string, string> = {};
    for (let i = 0; i < 120; i++) meta[`k${i}`] = 'x'.repeat(65_000);
    const frame = requestFrame(1, 'sleep', { ms: 30_000 }, { meta });
    const [, result] = await Promise.all([
      // At most 100 requests (780 MB of metadata), never more than 16 MB waiting in this process.
      flood(socket, (id) => (id <= 100 ? (frame.writeUInt32BE(id, 12), Buffer.from(frame)) : encodeFrame(FrameType.HEARTBEAT, 0)), SECONDS * 1000, 1),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('requests decoding to a view into the 64 KiB read that carried them, held by slow handlers: the read is not kept', async () => {
    const target = await victim();
    const socket = await deafSocket(target.child.port);
    // Each write is one request whose value holds a 1-byte binary, then a heartbeat filling the
    // rest of a 64 KiB read; 3,000 of them.
    const filler = encodeFrame(FrameType.HEARTBEAT, 0, Buffer.alloc(64 * 1024 - 200));
    const [, result] = await Promise.all([
      flood(
        socket,
        (id) => (id <= 3000 ? Buffer.concat([requestFrame(id, 'sleep', { ms: 30_000, x: Buffer.from([1]) }), filler]) : encodeFrame(FrameType.HEARTBEAT, 0)),
        SECONDS * 1000,
        10,
      ),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('100,000 empty requests to a method that sleeps, from 10 connections: each call is priced, the rest wait unread', async () => {
    const target = await victim();
    const sockets = await Promise.all(Array.from({ length: 10 }, () => deafSocket(target.child.port)));
    const [, result] = await Promise.all([
      Promise.all(
        sockets.map((socket) =>
          flood(socket, (id) => (id <= 10_000 ? requestFrame(id, 'sleep', { ms: 30_000 }) : encodeFrame(FrameType.HEARTBEAT, 0)), SECONDS * 1000),
        ),
      ),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('256 distinct 760-byte routes on each of 400 connections: what a connection remembers of routes is bounded', async () => {
    const target = await victim();
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 400; i++) sockets.push(await deafSocket(target.child.port));
    const name = (i: number, part: string): string => `${i}${part}`.padEnd(250, 'y');
    // The same 256 requests on every connection (each remembers its own routes), built once.
    const requests = Buffer.concat(
      Array.from({ length: 256 }, (_, i) => requestFrame(i + 1, name(i, 'm'), {}, { service: name(i, 's'), version: name(i, 'v') })),
    );
    for (const socket of sockets) socket.write(requests);
    const result = await goodClientDuring(target, SECONDS * 1000);
    expectUnharmed(target, result);
  });

  it('heartbeats flooded by 8 connections that never read: answered once per batch, not one queued frame each', async () => {
    const target = await victim();
    const sockets = await Promise.all(Array.from({ length: 8 }, () => deafSocket(target.child.port)));
    const heartbeat = encodeFrame(FrameType.HEARTBEAT, 0);
    const [, result] = await Promise.all([
      Promise.all(sockets.map((socket) => flood(socket, () => heartbeat, SECONDS * 1000))),
      goodClientDuring(target, SECONDS * 1000),
    ]);
    expectUnharmed(target, result);
  });

  it('trickled bytes: 20 connections declaring 8 MiB frames, one byte per write', async () => {
    const target = await victim();
    const sockets = await Promise.all(Array.from({ length: 20 }, () => deafSocket(target.child.port)));
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(8 * 1024 * 1024 - 1, 16);
    for (const socket of sockets) socket.write(header);
    const trickle = async (): Promise<number> => {
      let sent = 0;
      const one = Buffer.from([0x80]);
      const until = Date.now() + SECONDS * 1000;
      while (Date.now() < until) {
        for (const socket of sockets) if (!socket.destroyed && socket.writableLength < 65_536) for (let i = 0; i < 50; i++) socket.write(one) && sent++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      return sent;
    };
    const [sent, result] = await Promise.all([trickle(), goodClientDuring(target, SECONDS * 1000)]);
    console.log(`trickled ${sent} single-byte writes`);
    expectUnharmed(target, result);
  });

  it('partial frames at full speed: 20 connections send 7 MiB of 8 MiB frames and stall, reconnecting when closed', async () => {
    // What maxTotalBufferedBytes is for: without it 20 such connections hold 160 MB until the
    // frame timeout, and a reconnecting attacker keeps it so.
    const target = await victim();
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(8 * 1024 * 1024 - 64, 16);
    const partial = Buffer.concat([header, Buffer.alloc(7 * 1024 * 1024, 0x61)]);
    let opened = 0;
    const attack = async (): Promise<void> => {
      const until = Date.now() + SECONDS * 1000;
      while (Date.now() < until) {
        const socket = await deafSocket(target.child.port);
        opened++;
        socket.write(partial);
        // Read what the provider says so its close is seen; then open the next one.
        socket.resume();
        await new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          setTimeout(resolve, Math.max(0, until - Date.now())).unref();
        });
      }
    };
    const [, result] = await Promise.all([Promise.all(Array.from({ length: 20 }, attack)), goodClientDuring(target, SECONDS * 1000)]);
    console.log(`${opened} connections opened`);
    expectUnharmed(target, result);
  });

  it('an honest pipelining peer whose every write ends one byte into the next frame is never closed', async () => {
    const target = await victim();
    const socket = net.connect({ host: '127.0.0.1', port: target.child.port });
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let answers = 0;
    let goaway = false;
    socket.on('data', (chunk: Buffer) => {
      // Counting RESPONSE headers is enough: answers are small and arrive whole.
      for (let offset = 0; offset + 20 <= chunk.length; ) {
        if (chunk[offset + 3] === FrameType.GOAWAY) goaway = true;
        if (chunk[offset + 3] === FrameType.RESPONSE) answers++;
        offset += 20 + chunk.readUInt32BE(offset + 16);
      }
    });
    const frames = (id: number): Buffer => requestFrame(id, 'echo', { id });
    let carry: Buffer = Buffer.alloc(0);
    let id = 1;
    const until = Date.now() + Math.max(SECONDS, 12) * 1000;
    while (Date.now() < until) {
      // Send the rest of the previous frame plus the next one but its last bytes.
      const next = frames(id++);
      const cut = next.length - 1;
      socket.write(Buffer.concat([carry, next.subarray(0, cut)]));
      carry = next.subarray(cut);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    socket.write(carry);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(goaway).toBe(false);
    expect(socket.destroyed).toBe(false);
    expect(answers).toBe(id - 1);
  });
});

describe('budgets: what a provider can make a consumer hold', () => {
  it('a hostile provider pushing past the window: the reader holds at most its window and one frame', async () => {
    const sent = { chunks: 0 };
    const server = net.createServer(
      afterOpening((socket) => {
        socket.once('data', (chunk: Buffer) => {
          const id = chunk.readUInt32BE(12);
          // Push chunks as fast as the socket takes them, ignoring the window.
          const push = (): void => {
            while (!socket.destroyed && socket.writableLength < 4 * 1024 * 1024) {
              const body = Buffer.alloc(4 + 8 * 1024);
              body.writeUInt32BE(sent.chunks++, 0);
              body.set([0xc5, 0x1f, 0xfb], 4);
              socket.write(encodeFrame(FrameType.STREAM_CHUNK, id, body.subarray(0, 4 + 3 + 0x1ffb), { serializer: 1 }));
            }
            if (!socket.destroyed) setImmediate(push);
          };
          push();
        });
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const port = (server.address() as net.AddressInfo).port;
    const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, timeoutMs: 10_000, config: false });
    cleanups.push(() => client.close());
    const stream = client.proxy<{ count(request: { n: number }): AsyncIterable<unknown> }>('test.Stream');
    const heapBefore = process.memoryUsage().heapUsed;
    let read = 0;
    const error = await (async () => {
      try {
        for await (const chunk of stream.count({ n: 1e9 })) {
          expect(chunk).toBeInstanceOf(Uint8Array);
          if (++read === 50) await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      } catch (caught) {
        return caught as { code: number; message: string };
      }
      return undefined;
    })();
    expect(error?.message).toMatch(/beyond its flow-control window/);
    expect(error?.code).toBe(RpcCode.INTERNAL);
    // Its grants let more through while it read; the provider broke the rule no later than one
    // window (64 KiB: eight 8 KiB chunks) after the reader stopped at 50.
    expect(read).toBeLessThanOrEqual(50 + 9);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
  });

  it('a provider that reads nothing: calls past the unsent budget wait, then fail never sent once it took nothing for heartbeatTimeoutMs', async () => {
    const accepted: net.Socket[] = [];
    // It answers the connection's opening heartbeat, then reads no more.
    const server = net.createServer(
      afterOpening((socket) => {
        socket.pause();
        accepted.push(socket);
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    cleanups.push(() => accepted.forEach((socket) => socket.destroy()));
    const port = (server.address() as net.AddressInfo).port;
    const client = await createClient({
      registry: `shuttle://127.0.0.1:${port}`,
      timeoutMs: 3000,
      heartbeatTimeoutMs: 800,
      maxUnsentBytes: 1024 * 1024,
      config: false,
    });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const payload = new Uint8Array(256 * 1024);
    const started = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 400 }, () =>
        echo.echo(payload).then(
          () => 'ok',
          (error: Error & { details?: Record<string, unknown> }) => ({ error, after: Date.now() - started }),
        ),
      ),
    );
    const refused = outcomes.filter(
      (outcome): outcome is { error: Error & { details?: Record<string, unknown> }; after: number } =>
        typeof outcome === 'object' && /maxUnsentBytes/.test(outcome.error.message),
    );
    // The kernel's buffers take a few MB; every call past them and the budget waited for the
    // provider to read, and was refused when it had read nothing for 800 ms — before its deadline.
    expect(refused.length).toBeGreaterThan(300);
    expect(refused[0]!.error.message).toMatch(
      /bytes of requests wait unsent to provider 127\.0\.0\.1:\d+, over this connection's limit \(maxUnsentBytes 1048576\), and it took none of them in 800 ms; the provider is not reading/,
    );
    expect(refused.every((outcome) => outcome.error.details?.['neverSent'] === true)).toBe(true);
    expect(Math.min(...refused.map((outcome) => outcome.after))).toBeGreaterThanOrEqual(700);
    expect(Math.max(...refused.map((outcome) => outcome.after))).toBeLessThan(3000);
    expect(outcomes.filter((outcome) => outcome === 'ok')).toEqual([]);
    // The rest waited for their deadline, not longer.
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('a provider that reads slower than the consumer writes: 256 calls of 64 KiB at once over a 1 MiB budget all succeed', async () => {
    const provider = await startFixture('provider', {});
    cleanups.push(() => provider.stop());
    const client = await createClient({ registry: provider.url, timeoutMs: 30_000, maxUnsentBytes: 1024 * 1024, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const payload = new Uint8Array(64 * 1024).fill(7);
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(Array.from({ length: 256 }, () => echo.echo(payload) as Promise<Uint8Array>));
      expect(answers.every((answer) => answer.length === payload.length && answer[100] === 7)).toBe(true);
    }
  }, 60_000);
});
