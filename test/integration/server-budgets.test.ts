import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, type Proxied, type RpcClient, type RpcServer } from 'shuttle-rpc';
import { encodeFrame, FrameType } from '../../src/transport/frame.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The budgets one tcp server shares between all its connections: partial frames
 * (maxTotalBufferedBytes) and decoded requests of running calls (maxTotalDecodedBytes). Each is
 * read from the server's `budgets` while real sockets on loopback push at it: the bytes held stay
 * within the budget plus what the progress rule allows, honest peers all finish, and hostile ones
 * are closed by the frame timeout without taking the others down.
 */
const MiB = 1024 * 1024;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function provider(limits: Record<string, number>): Promise<RpcServer> {
  const server = await createServer({ services: [new EchoService()], registry: false, config: false, host: '127.0.0.1', port: 0, limits });
  cleanups.push(() => server.close());
  return server;
}

/** One client per connection: `count` clients, each with its own socket to `server`. */
async function clients(server: RpcServer, count: number): Promise<Proxied<EchoApi>[]> {
  const made: RpcClient[] = await Promise.all(Array.from({ length: count }, () => createClient({ registry: server.url, config: false, timeoutMs: 20_000 })));
  cleanups.push(() => Promise.all(made.map((client) => client.close())));
  return made.map((client) => client.proxy<EchoApi>('test.Echo', { version: '1.0.0' }));
}

/** Samples `read` every few ms while `work` runs; resolves with work's result and the peak. */
async function peakDuring<T>(read: () => number, work: Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = read();
  const timer = setInterval(() => (peak = Math.max(peak, read())), 2);
  try {
    const result = await work;
    return { result, peak: Math.max(peak, read()) };
  } finally {
    clearInterval(timer);
  }
}

const used = (server: RpcServer, budget: string): number => server.budgets.find((entry) => entry.transport === 'tcp' && entry.budget === budget)!.used;

describe('maxTotalBufferedBytes: partial frames of all connections together', () => {
  it('honest peers sending large requests at once all finish, one frame at a time past the budget', async () => {
    // 8 requests of 3 MiB at once against 4 MiB of partial frames: when every connection holds
    // part of a frame and the budget is spent, one of them still reads to the end of its frame,
    // so they finish in turn rather than all waiting on each other until the frame timeout.
    const server = await provider({ maxTotalBufferedBytes: 4 * MiB, frameTimeoutMs: 4000 });
    const echoes = await clients(server, 8);
    const payload = 'x'.repeat(3 * MiB);
    const { result, peak } = await peakDuring(() => used(server, 'maxTotalBufferedBytes'), Promise.all(echoes.map((echo) => echo.echo(payload))));
    expect(result.every((answer) => answer === payload)).toBe(true);
    // The budget, one frame read past it, and what each connection read before it was held.
    expect(peak).toBeGreaterThan(2 * MiB);
    expect(peak).toBeLessThanOrEqual(4 * MiB + 3 * MiB + 8 * 64 * 1024 + 1024);
    await waitUntil(() => used(server, 'maxTotalBufferedBytes') === 0, 'partial frames given back', 2000);
  });

  it('a connection closed by its frame timeout charges nothing for the bytes it is sent after its GOAWAY', async () => {
    const server = await provider({ maxTotalBufferedBytes: 4 * MiB, frameTimeoutMs: 300 });
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(8 * MiB - 64, 16);
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024, 0x61)]));
    // The GOAWAY (frame timeout) arrives; the provider has half-closed, but the peer may still write.
    await waitUntil(() => received > 0, 'the GOAWAY', 3000, 10);
    expect(used(server, 'maxTotalBufferedBytes')).toBe(0);
    const peak = await peakDuring(
      () => used(server, 'maxTotalBufferedBytes'),
      (async () => {
        for (let i = 0; i < 24 && !socket.destroyed; i++) {
          socket.write(Buffer.alloc(128 * 1024, 0x62));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })(),
    );
    // A failed connection reads nothing more: what it is sent is not buffered, nor charged.
    expect(peak.peak).toBe(0);
  });

  it('stalled partial frames on 40 connections hold no more than the budget; the frame timeout closes them, a good client goes on', async () => {
    const server = await provider({ maxTotalBufferedBytes: 4 * MiB, frameTimeoutMs: 1500 });
    const [echo] = await clients(server, 1);
    // Each declares an 8 MiB frame, sends 1 MiB of it and stops: 40 MiB offered, 4 MiB allowed.
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(8 * MiB - 64, 16);
    const sockets = await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const socket = net.connect({ host: '127.0.0.1', port: server.port }, () => resolve(socket));
            socket.on('error', () => {});
            // Read (and drop) what the provider says, so its GOAWAY and close are seen.
            socket.resume();
          }),
      ),
    );
    cleanups.push(() => sockets.forEach((socket) => socket.destroy()));
    const closed = sockets.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    for (const socket of sockets) socket.write(Buffer.concat([header, Buffer.alloc(MiB, 0x61)]));
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, used(server, 'maxTotalBufferedBytes'))), 2);
    try {
      // The good client's calls keep succeeding while the budget is spent: small frames arrive
      // whole in one read and are handed out as views, holding nothing.
      for (let i = 0; i < 50; i++) expect(await echo!.echo({ i })).toEqual({ i });
      await Promise.all(closed);
    } finally {
      clearInterval(timer);
    }
    expect(peak).toBeGreaterThan(3 * MiB);
    // The budget, plus at most one 64 KiB read per connection past it (a read is charged after
    // it is taken), plus one frame's buffer grown fourfold past the budget by the progress rule.
    expect(peak).toBeLessThanOrEqual(4 * MiB + 40 * 64 * 1024 + 4 * MiB);
    expect(used(server, 'maxTotalBufferedBytes')).toBe(0);
    expect(await echo!.echo('still here')).toBe('still here');
  });
});

describe('maxTotalDecodedBytes: decoded requests of running calls on all connections', () => {
  it('requests over the budget wait undecoded until running calls give theirs back, then all run', async () => {
    const server = await provider({ maxTotalDecodedBytes: 2 * MiB, maxDecodedBytesPerConnection: 16 * MiB });
    const echoes = await clients(server, 12);
    // Each request (~600 KB of strings) is held by its handler for 300 ms: 12 of them are 3.5x
    // the server's budget, so at most 3–4 run at once and the rest wait for them.
    const request = { ms: 300, pad: 'y'.repeat(600_000) };
    const started = Date.now();
    const { result, peak } = await peakDuring(() => used(server, 'maxTotalDecodedBytes'), Promise.all(echoes.map((echo) => echo.sleep(request))));
    expect(result).toHaveLength(12);
    expect(peak).toBeGreaterThan(MiB);
    expect(peak).toBeLessThanOrEqual(2 * MiB);
    // Had they all run at once, 300 ms; in turns of at most 3, four turns or more.
    expect(Date.now() - started).toBeGreaterThanOrEqual(4 * 300 - 50);
    await waitUntil(() => used(server, 'maxTotalDecodedBytes') === 0, 'decoded requests given back', 2000);
  });

  it('a small request that is alone on its connection runs even when the budget is spent', async () => {
    const server = await provider({ maxTotalDecodedBytes: 1 * MiB, maxDecodedBytesPerConnection: 16 * MiB });
    const [holder, small] = await clients(server, 2);
    // One call holds ~1,020,000 of the 1,048,576 bytes; 50 KB more would pass the budget, but
    // a request of at most 64 KiB that is its connection's only call always runs.
    const request = { ms: 1500, pad: 'z'.repeat(1_020_000) };
    const held = holder!.sleep(request);
    await waitUntil(() => used(server, 'maxTotalDecodedBytes') > 1_000_000, 'the budget spent by one call', 2000);
    const before = Date.now();
    const tiny = { pad: 'w'.repeat(50_000) };
    expect(await small!.echo(tiny)).toEqual(tiny);
    expect(Date.now() - before).toBeLessThan(1000);
    expect(used(server, 'maxTotalDecodedBytes') + 50_000).toBeGreaterThan(MiB);
    await held;
  });
});
