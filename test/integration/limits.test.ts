import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type Proxied, type RpcClient } from 'shuttle-rpc';
import { connectRaw, type RawPeer } from 'shuttle-rpc/testing';
import { encodeFrame, FrameType } from '../../src/transport/frame.js';
import type { EchoApi } from '../fixtures/services.js';
import { requestFrame, unpack } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * Connection limits of the tcp transport, against a provider in its own process with small
 * limits: connections per address, the frame timeout (slowloris), the idle timeout, calls per
 * connection. Every refusal names its limit; well-behaved clients see no errors throughout.
 */
const limits = { maxConnections: 50, maxConnectionsPerAddress: 6, frameTimeoutMs: 300, maxCallsPerConnection: 3, idleTimeoutMs: 600 };
let provider: Child;
let client: RpcClient;
let echo: Proxied<EchoApi>;

beforeAll(async () => {
  provider = await startFixture('provider', { PROVIDER_LIMITS: JSON.stringify(limits) });
  // Heartbeats well inside the provider's idle timeout keep this client's connection.
  client = await createClient({ registry: provider.url, heartbeatIntervalMs: 100, timeoutMs: 5000, config: false });
  echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
  await echo.reset();
});
afterAll(async () => {
  await client?.close();
  await provider?.stop();
});

const goawayReason = async (raw: RawPeer, timeoutMs = 3000): Promise<{ status: number; message: string }> => {
  const frame = await raw.nextFrame((candidate) => candidate.type === FrameType.GOAWAY, timeoutMs);
  return { status: frame.status, message: (JSON.parse(frame.body.toString()) as { message: string }).message };
};

describe('connection limits', () => {
  it('refuses connections over the per-address limit with a GOAWAY naming it; a freed slot is reused', async () => {
    // The client above holds one connection from this address.
    const admitted = await Promise.all(Array.from({ length: limits.maxConnectionsPerAddress - 1 }, () => connectRaw(provider.host, provider.port)));
    try {
      admitted[0]!.send(requestFrame(1, 'add', { a: 1, b: 1 }));
      expect(unpack((await admitted[0]!.nextFrame()).body)).toEqual({ sum: 2 });
      const extra = await connectRaw(provider.host, provider.port);
      expect(await goawayReason(extra)).toEqual({
        status: RpcCode.RESOURCE_EXHAUSTED,
        message: `provider has ${limits.maxConnectionsPerAddress} connections from 127.0.0.1, its limit per address (maxConnectionsPerAddress)`,
      });
      await extra.waitClosed();
      // A consumer refused the same way sends nothing, and its call says why.
      const refusedClient = await createClient({ registry: provider.url, timeoutMs: 5000, cluster: 'failfast', config: false });
      try {
        const refused = await refusedClient
          .proxy<EchoApi>('test.Echo', { version: '1.0.0' })
          .add({ a: 1, b: 1 })
          .then(
            () => undefined,
            (error: { code: RpcCode; message: string; details?: Record<string, unknown> }) => error,
          );
        expect(refused?.code).toBe(RpcCode.UNAVAILABLE);
        expect(refused?.details?.['neverSent']).toBe(true);
        expect(refused?.message).toMatch(/provider has 6 connections from 127\.0\.0\.1, its limit per address \(maxConnectionsPerAddress\)/);
      } finally {
        await refusedClient.close();
      }
      admitted.pop()!.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const again = await connectRaw(provider.host, provider.port);
      again.send(requestFrame(2, 'add', { a: 2, b: 2 }));
      expect(unpack((await again.nextFrame()).body)).toEqual({ sum: 4 });
      again.close();
      expect(await echo.add({ a: 3, b: 3 })).toEqual({ sum: 6 });
    } finally {
      for (const raw of admitted) raw.close();
    }
  });

  it('closes slow (slowloris) connections within the frame timeout + 1 s while good calls go on', async () => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const frame = requestFrame(1, 'add', { a: 1, b: 2 });
    const slow = await Promise.all(Array.from({ length: 3 }, () => connectRaw(provider.host, provider.port)));
    const started = Date.now();
    // Each sends a frame a byte at a time, one byte every 50 ms: it would take a second.
    const timers = slow.map((raw) => {
      let sent = 0;
      const timer = setInterval(() => {
        if (sent < frame.length && !raw.closed) raw.send(frame.subarray(sent, ++sent));
      }, 50);
      return timer;
    });
    let goodCalls = 0;
    const good = (async () => {
      while (Date.now() - started < 900) {
        expect(await echo.add({ a: goodCalls, b: 1 })).toEqual({ sum: goodCalls + 1 });
        goodCalls++;
      }
    })();
    try {
      for (const raw of slow) {
        expect(await goawayReason(raw)).toEqual({
          status: RpcCode.INTERNAL,
          message: `protocol error: a frame did not complete within ${limits.frameTimeoutMs} ms (frame timeout)`,
        });
        await raw.waitClosed(limits.frameTimeoutMs + 1000);
      }
      expect(Date.now() - started).toBeLessThan(limits.frameTimeoutMs + 1000);
      await good;
      expect(goodCalls).toBeGreaterThan(10);
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const raw of slow) raw.close();
    }
  });

  it('closes a connection that stays silent past the idle timeout; heartbeats keep one open', async () => {
    const silent = await connectRaw(provider.host, provider.port);
    const beating = await connectRaw(provider.host, provider.port);
    const heartbeat = setInterval(() => beating.send(encodeFrame(FrameType.HEARTBEAT, 0)), 150);
    try {
      const started = Date.now();
      expect(await goawayReason(silent)).toEqual({
        status: RpcCode.UNAVAILABLE,
        message: `protocol error: nothing received for ${limits.idleTimeoutMs} ms (idle timeout)`,
      });
      await silent.waitClosed();
      expect(Date.now() - started).toBeGreaterThanOrEqual(limits.idleTimeoutMs - 50);
      await new Promise((resolve) => setTimeout(resolve, limits.idleTimeoutMs));
      expect(beating.closed).toBe(false);
      beating.send(requestFrame(7, 'add', { a: 7, b: 7 }));
      expect(unpack((await beating.nextFrame((frame) => frame.requestId === 7)).body)).toEqual({ sum: 14 });
    } finally {
      clearInterval(heartbeat);
      silent.close();
      beating.close();
    }
  });

  it('a flood of REQUEST/CANCEL pairs never runs more handlers at once than the per-connection cap', async () => {
    await echo.reset();
    const raw = await connectRaw(provider.host, provider.port);
    try {
      // 300 pairs, sent as fast as the socket takes them: each call is cancelled at once, but a
      // cancelled call holds its slot until its handler has returned.
      for (let id = 1; id <= 300; id++) {
        raw.send(requestFrame(id, 'work', { ms: 50 }));
        raw.send(encodeFrame(FrameType.CANCEL, id));
      }
      raw.send(requestFrame(1000, 'add', { a: 1, b: 1 }));
      const last = await raw.nextFrame((frame) => frame.requestId === 1000, 10_000);
      expect([RpcCode.OK, RpcCode.RESOURCE_EXHAUSTED]).toContain(last.status);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const invocations = await echo.invocations();
      expect(invocations['workMaxRunning']).toBeGreaterThan(0);
      expect(invocations['workMaxRunning']).toBeLessThanOrEqual(limits.maxCallsPerConnection);
      expect(raw.closed).toBe(false);
      expect(await echo.add({ a: 2, b: 2 })).toEqual({ sum: 4 });
    } finally {
      raw.close();
    }
  });

  it('refuses calls over the per-connection limit RESOURCE_EXHAUSTED without running them', async () => {
    await echo.reset();
    const raw = await connectRaw(provider.host, provider.port);
    try {
      for (let id = 1; id <= 6; id++) raw.send(requestFrame(id, 'sleep', { ms: 300 }));
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => raw.nextFrame((frame) => frame.requestId === i + 1)));
      const refused = answers.filter((frame) => frame.status === RpcCode.RESOURCE_EXHAUSTED);
      expect(refused.map((frame) => frame.requestId)).toEqual([4, 5, 6]);
      expect(JSON.parse(refused[0]!.body.toString())).toMatchObject({
        message: '3 calls already run on this connection, its limit (maxCallsPerConnection)',
        details: { neverSent: true },
        retryAfterMs: 100,
      });
      expect(answers.filter((frame) => frame.status === RpcCode.OK).map((frame) => unpack(frame.body))).toEqual([
        { aborted: false },
        { aborted: false },
        { aborted: false },
      ]);
      expect((await echo.invocations())['sleep']).toBe(3);
    } finally {
      raw.close();
    }
  });
});
