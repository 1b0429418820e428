import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type Endpoint, type Proxied, type RpcClient } from 'shuttle-rpc';
import type { BudgetApi } from '../fixtures/budget-service.js';
import { envelopeMessage, gzipMessage, latencies, quantile, requestFlood, rssOf, unreadRequests, type FloodPeer, type UnreadPeer } from '../helpers/budget.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * What a peer can make the grpc transport hold, against a provider in its own process: answers
 * it never reads, connections that never finish their HTTP/2 preface or fall idle, and the
 * connection age limit (which must never cut a running stream by default).
 */
const MB = 1024 * 1024;

async function startProvider(env: Record<string, string> = {}): Promise<{ child: Child; grpcPort: number }> {
  const child = await startFixture('budget-provider', env);
  const grpcPort = (child.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
  return { child, grpcPort };
}

async function grpcClient(port: number): Promise<{ client: RpcClient; budget: Proxied<BudgetApi> }> {
  const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, transport: 'grpc', timeoutMs: 5000, config: false });
  return { client, budget: client.proxy<BudgetApi>('test.Budget') };
}

/** Resolves with how long the server took to close a raw connection that sent `bytes`; fails past `withinMs`. */
async function closedAfter(port: number, bytes: Buffer, withinMs: number): Promise<number> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const started = Date.now();
  socket.write(bytes);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${withinMs} ms`));
    }, withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

describe('a peer that never reads its answers, against default limits', () => {
  let provider: { child: Child; grpcPort: number };
  let good: Awaited<ReturnType<typeof grpcClient>>;
  const attackers: UnreadPeer[] = [];
  beforeAll(async () => {
    provider = await startProvider();
    good = await grpcClient(provider.grpcPort);
  });
  afterAll(async () => {
    for (const attacker of attackers) attacker.close();
    await good?.client.close();
    await provider?.child.stop();
  });

  it('300 unread 1 MB answers on each of two connections raise RSS by at most 64 MB for 10 s; a good client keeps p99 under 100 ms', {
    timeout: 40_000,
  }, async () => {
    const pid = provider.child.process.pid!;
    // Warm up: the good client's connection and the handlers' code paths, then the baseline.
    for (let i = 0; i < 50; i++) await good.budget.add({ a: i, b: 1 });
    await good.budget.blob({ bytes: MB });
    const baseline = rssOf(pid);
    for (let c = 0; c < 2; c++) attackers.push(unreadRequests(provider.grpcPort, '/test.Budget/blob', { bytes: MB }, 300));
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 100);
    try {
      const measured = await latencies(() => good.budget.add({ a: 1, b: 2 }), Date.now() + 10_000, 2000);
      expect(measured.length).toBeGreaterThan(100);
      expect(quantile(measured, 0.99)).toBeLessThan(100);
    } finally {
      clearInterval(sampler);
    }
    expect(provider.child.process.exitCode).toBeNull();
    // The first few got their megabyte; the rest waited for room, without running, and are
    // refused once their connection has sent nothing for frameTimeoutMs (10 s).
    await waitUntil(
      () => attackers.every((attacker) => attacker.answered === 300),
      () => `every request answered (${attackers.map((attacker) => attacker.answered)})`,
      10_000,
      50,
    );
    expect(peak - baseline).toBeLessThan(64 * MB);
  });

  it('a call on a connection holding its budget of unread answers waits, and is refused RESOURCE_EXHAUSTED naming the limit once the connection sent nothing for frameTimeoutMs', {
    timeout: 30_000,
  }, async () => {
    const attacker = attackers[0]!;
    const started = Date.now();
    expect(await attacker.ask('/test.Budget/add', { a: 1, b: 2 })).toEqual({
      status: RpcCode.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(
        /^provider holds \d+ bytes of answers this connection has not read, none of them read for 10000 ms \(frameTimeoutMs\); more would pass its limit \(maxUnsentBytes 4194304\): read them first$/,
      ),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
  });

  it('100 unread streams of 64 KB chunks on one connection: the generators wait once the connection holds its budget', async () => {
    const control = await createClient({ registry: provider.child.url, timeoutMs: 5000, config: false });
    try {
      const counter = control.proxy<BudgetApi>('test.Budget');
      const before = await counter.pulled();
      const baseline = rssOf(provider.child.process.pid!);
      const streams = unreadRequests(provider.grpcPort, '/test.Budget/flood', { n: 100, bytes: 64 * 1024 }, 100);
      attackers.push(streams);
      // Streams that arrive once the connection holds its budget wait before they start.
      await waitUntil(() => streams.answered > 0, 'the first streams to open');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const pulled = (await counter.pulled()) - before;
      // The budget's 64 chunks, plus at most two a stream (the one that passed the check while
      // the connection was still open and the one its HTTP/2 window let out); without the
      // budget each stream fills grpc-js's 16-chunk write buffer: 1,600 chunks, 100 MB.
      expect(pulled).toBeGreaterThanOrEqual(64);
      expect(pulled).toBeLessThan(64 + 2 * 100);
      expect(rssOf(provider.child.process.pid!) - baseline).toBeLessThan(64 * MB);
    } finally {
      await control.close();
    }
  });

  it('a client that reads gets its large answers, as many at once as the budget holds', async () => {
    const sizes = await Promise.all(Array.from({ length: 3 }, () => good.budget.blob({ bytes: MB }).then((bytes) => bytes.length)));
    expect(sizes).toEqual([MB, MB, MB]);
  });
});

describe("a consumer that reads, with more answers in flight than its connection's budget holds", () => {
  let provider: { child: Child; grpcPort: number };
  let reader: Awaited<ReturnType<typeof grpcClient>>;
  beforeAll(async () => {
    provider = await startProvider();
    reader = await grpcClient(provider.grpcPort);
  });
  afterAll(async () => {
    await reader?.client.close();
    await provider?.child.stop();
  });

  it('gets every answer: 256 calls of 64 KiB at once, then 1,000 more kept 256 in flight (16 MiB against a 4 MiB budget)', async () => {
    const first = await Promise.allSettled(Array.from({ length: 256 }, () => reader.budget.blob({ bytes: 64 * 1024 }).then((bytes) => bytes.length)));
    expect(first.filter((outcome) => outcome.status === 'rejected').map((outcome) => String((outcome as PromiseRejectedResult).reason))).toEqual([]);
    let next = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < 1000) {
          next++;
          await reader.budget.blob({ bytes: 64 * 1024 }).catch((error: Error) => failures.push(error.message));
        }
      }),
    );
    expect(failures.slice(0, 3)).toEqual([]);
  });
});

describe('request messages a peer sends, against default budgets (frameTimeoutMs 1000)', () => {
  let provider: { child: Child; grpcPort: number };
  let good: Awaited<ReturnType<typeof grpcClient>>;
  let peers: FloodPeer[] = [];
  beforeAll(async () => {
    provider = await startProvider({ BUDGET_LIMITS: JSON.stringify({ frameTimeoutMs: 1000 }) });
    good = await grpcClient(provider.grpcPort);
  });
  afterEach(() => {
    for (const peer of peers) peer.close();
    peers = [];
  });
  afterAll(async () => {
    await good?.client.close();
    await provider?.child.stop();
  });

  /** The provider's peak RSS over its baseline while a good client calls `add` for `ms`; every call must succeed. */
  async function peakGrowth(ms: number, attack: () => void): Promise<number> {
    const pid = provider.child.process.pid!;
    for (let i = 0; i < 20; i++) await good.budget.add({ a: i, b: 1 });
    const baseline = rssOf(pid);
    attack();
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 100);
    try {
      const measured = await latencies(() => good.budget.add({ a: 1, b: 2 }), Date.now() + ms, 1000);
      expect(measured.length).toBeGreaterThan(10);
    } finally {
      clearInterval(sampler);
    }
    expect(provider.child.process.exitCode).toBeNull();
    return peak - baseline;
  }

  function merged(): Record<number, number> {
    const all: Record<number, number> = {};
    for (const peer of peers) for (const [code, count] of Object.entries(peer.statuses)) all[Number(code)] = (all[Number(code)] ?? 0) + count;
    return all;
  }

  it('gzip requests of 8 KB inflating to 8 MB, one on each of 50 connections, are refused UNIMPLEMENTED before they are inflated; RSS grows less than 64 MB', async () => {
    const message = gzipMessage({ n: 1, delayMs: 2000, pad: Buffer.alloc(8 * MB - 64 * 1024) });
    expect(message.length).toBeLessThan(16 * 1024);
    const growth = await peakGrowth(3000, () => {
      for (let c = 0; c < 50; c++) peers.push(requestFlood(provider.grpcPort, '/test.Budget/drip', message, 1, { headers: { 'grpc-encoding': 'gzip' } }));
    });
    // Without the refusal grpc-js inflated every one (a connection's first read has no
    // reservation): +500 MB here.
    expect(growth).toBeLessThan(64 * MB);
    await waitUntil(
      () => peers.every((peer) => peer.open === 0),
      () => `every stream to end: ${JSON.stringify(merged())}`,
      10_000,
    );
    expect(merged()).toEqual({ [RpcCode.UNIMPLEMENTED]: 50 });
    expect(peers[0]!.messageOf(RpcCode.UNIMPLEMENTED)).toBe(
      'the provider takes uncompressed requests only (grpc-encoding "gzip" refused; grpc-accept-encoding: identity)',
    );
  });

  it('60 requests of 8 MB held by handlers that wait, on two connections: RSS grows less than 128 MB; the rest wait unread', async () => {
    const message = envelopeMessage({ n: 1, delayMs: 1500, pad: Buffer.alloc(8 * MB - 64 * 1024) });
    const growth = await peakGrowth(5000, () => {
      for (let c = 0; c < 2; c++) peers.push(requestFlood(provider.grpcPort, '/test.Budget/drip', message, 30));
    });
    // Without the budget grpc-js read and handed over every request: +500 MB here. With it the
    // server holds 24 MiB of requests, and each connection's next message is read as the
    // running calls end (what was read and given back stays in the heap until a collection).
    expect(growth).toBeLessThan(128 * MB);
    const statuses = merged();
    expect(statuses[RpcCode.OK]).toBeGreaterThanOrEqual(3);
    expect(Object.values(statuses).reduce((sum, count) => sum + count, 0)).toBeLessThan(30);
  });

  it('400 unary calls that each send 60 KB of empty messages and stay open are answered INVALID_ARGUMENT and reset; RSS grows less than 256 MB', async () => {
    // 12,288 empty gRPC messages (5 zero bytes each) on each stream.
    const empties = Buffer.alloc(60 * 1024);
    const growth = await peakGrowth(3000, () => {
      peers.push(requestFlood(provider.grpcPort, '/test.Budget/add', empties, 400, { stopAfter: empties.length }));
    });
    // Without the reset grpc-js answered the second message and kept each stream open, with every
    // message parsed from its read, for as long as the peer kept it: +875 MB for 1,000 streams.
    // What the parse costs is given back as the streams close (+130 MB at the peak here).
    expect(growth).toBeLessThan(256 * MB);
    const [peer] = peers;
    await waitUntil(
      () => peer!.open === 0,
      () => `every stream to be reset: ${JSON.stringify(peer!.statuses)}, ${peer!.open} open`,
      10_000,
    );
    expect(peer!.statuses).toEqual({ [RpcCode.INVALID_ARGUMENT]: 400 });
    expect(peer!.messageOf(RpcCode.INVALID_ARGUMENT)).toBe('a unary or server-streaming call carries one request message');
  });

  it('40 streams that each send 7.5 MB of an 8 MB message and stop: RSS grows less than 64 MB; each read under way ends RESOURCE_EXHAUSTED after frameTimeoutMs', async () => {
    const whole = envelopeMessage({ a: 1, b: 2, pad: Buffer.alloc(8 * MB - 1024) });
    const growth = await peakGrowth(4000, () => {
      peers.push(requestFlood(provider.grpcPort, '/test.Budget/add', whole, 40, { stopAfter: 7.5 * MB }));
    });
    // Without the budget every stream's bytes were read and kept, with no time limit: +300 MB.
    expect(growth).toBeLessThan(64 * MB);
    const [peer] = peers;
    expect(peer!.statuses[RpcCode.RESOURCE_EXHAUSTED]).toBeGreaterThanOrEqual(2);
    expect(peer!.messageOf(RpcCode.RESOURCE_EXHAUSTED)).toMatch(/^the request message was not whole within frameTimeoutMs \(1000 ms\) of its read starting$/);
  });
});

/** The HTTP/2 client preface: the magic line and an empty SETTINGS frame. */
const PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

describe('connections that stop half way or fall idle (frameTimeoutMs 500, idleTimeoutMs 1000)', () => {
  let provider: { child: Child; grpcPort: number };
  beforeAll(async () => {
    provider = await startProvider({ BUDGET_LIMITS: JSON.stringify({ frameTimeoutMs: 500, idleTimeoutMs: 1000 }) });
  });
  afterAll(() => provider?.child.stop());

  it('half an HTTP/2 preface, or none, is closed within frameTimeoutMs; other bytes at once', async () => {
    const [half, none, nearlyWhole, http1] = await Promise.all([
      closedAfter(provider.grpcPort, PREFACE.subarray(0, 16), 2000),
      closedAfter(provider.grpcPort, Buffer.alloc(0), 2000),
      closedAfter(provider.grpcPort, PREFACE.subarray(0, PREFACE.length - 1), 2000),
      closedAfter(provider.grpcPort, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 2000),
    ]);
    for (const took of [half, none, nearlyWhole]) expect(took).toBeGreaterThanOrEqual(400);
    for (const took of [half, none, nearlyWhole]) expect(took).toBeLessThan(1000);
    expect(http1).toBeLessThan(300);
  });

  it('a whole preface and then nothing is an idle connection, closed after idleTimeoutMs', async () => {
    const took = await closedAfter(provider.grpcPort, PREFACE, 4000);
    expect(took).toBeGreaterThanOrEqual(900);
    // grpc-js looks at the connection when its idle timer fires and, if the timer fired a
    // millisecond before Date.now() says a whole period has passed, re-arms it for another:
    // the close comes after one or two periods.
    expect(took).toBeLessThan(2 * 1000 + 500);
  });

  it('a consumer whose idle connection was closed reconnects for its next call; a stream longer than the idle timeout runs to its end', async () => {
    const { client, budget } = await grpcClient(provider.grpcPort);
    try {
      expect(await budget.add({ a: 1, b: 2 })).toEqual({ sum: 3 });
      await new Promise((resolve) => setTimeout(resolve, 1600));
      expect(await budget.add({ a: 2, b: 2 })).toEqual({ sum: 4 });
      const items: number[] = [];
      const call = budget.drip({ n: 6, delayMs: 300 });
      for await (const item of call) items.push(item);
      expect(items).toEqual([0, 1, 2, 3, 4, 5]);
    } finally {
      await client.close();
    }
  });
});

describe('keepalive: a peer that stops answering pings (keepaliveTimeMs 300, keepaliveTimeoutMs 300)', () => {
  let provider: { child: Child; grpcPort: number };
  beforeAll(async () => {
    provider = await startProvider({
      BUDGET_LIMITS: JSON.stringify({ idleTimeoutMs: 60_000 }),
      BUDGET_GRPC: JSON.stringify({ keepaliveTimeMs: 300, keepaliveTimeoutMs: 300 }),
    });
  });
  afterAll(() => provider?.child.stop());

  it('is closed within the ping interval and timeout, while a consumer that answers keeps its connection', async () => {
    const { client, budget } = await grpcClient(provider.grpcPort);
    try {
      // Sends its preface and never reads again: the provider's pings go unanswered.
      const silent = closedAfter(provider.grpcPort, PREFACE, 3000);
      const items: number[] = [];
      for await (const item of budget.drip({ n: 5, delayMs: 300 })) items.push(item);
      expect(items).toEqual([0, 1, 2, 3, 4]);
      const took = await silent;
      expect(took).toBeGreaterThanOrEqual(500);
      expect(took).toBeLessThan(1500);
    } finally {
      await client.close();
    }
  });
});

describe('connection age (maxConnectionAgeMs 1000)', () => {
  afterEach(async () => {
    await provider?.child.stop();
  });
  let provider: { child: Child; grpcPort: number } | undefined;

  it('without a grace (the default), a stream running past the age runs to its end; the consumer moves to a new connection', async () => {
    provider = await startProvider({ BUDGET_LIMITS: JSON.stringify({ maxConnectionAgeMs: 1000 }) });
    const { client, budget } = await grpcClient(provider.grpcPort);
    try {
      const items: number[] = [];
      for await (const item of budget.drip({ n: 8, delayMs: 300 })) items.push(item);
      expect(items).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(await budget.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    } finally {
      await client.close();
    }
  });

  it('with maxConnectionAgeGraceMs 500, a stream still running at age + grace is cut', async () => {
    provider = await startProvider({ BUDGET_LIMITS: JSON.stringify({ maxConnectionAgeMs: 1000, maxConnectionAgeGraceMs: 500 }) });
    const { client, budget } = await grpcClient(provider.grpcPort);
    try {
      const items: number[] = [];
      const started = Date.now();
      const error = await rejection(
        (async () => {
          for await (const item of budget.drip({ n: 20, delayMs: 300 })) items.push(item);
        })(),
      );
      expect(error.code).toBe(RpcCode.UNAVAILABLE);
      expect(items.length).toBeGreaterThan(0);
      expect(items.length).toBeLessThan(20);
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      await client.close();
    }
  });
});
