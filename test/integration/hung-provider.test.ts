import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { callOutcome, createClient, type RpcError } from 'shuttle-rpc';
import { DEFAULT_BACKOFF } from '../../src/common/backoff.js';
import { createInvocation } from '../../src/call/invocation.js';
import { monotonicNow } from '../../src/common/clock.js';
import { RpcCode } from '../../src/errors/errors.js';
import { createMsgpackSerializer } from '../../src/serializer/msgpack.js';
import { FrameType, encodeFrame } from '../../src/transport/frame.js';
import { TcpConnection } from '../../src/transport/tcp/tcp-connection.js';
import type { EchoApi } from '../fixtures/services.js';
import type { StreamApi } from '../fixtures/stream-service.js';
import { afterOpening } from '../helpers/frames.js';
import { startFixture } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection } from '../helpers/wait.js';

/*
 * A provider that goes silent with calls in flight (a busy loop, SIGSTOP, a black hole) while its
 * kernel keeps the connection open: how long the calls on it wait, measured from the last byte
 * it sent. Raw loopback peers stand in for the provider, so the moment it fell silent is known to
 * the millisecond.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a provider that falls silent with a call in flight (tcp)', () => {
  it('fails the call UNAVAILABLE, maybe executed, heartbeatIntervalMs + heartbeatTimeoutMs after its last byte', async () => {
    const heartbeatIntervalMs = 1000;
    const heartbeatTimeoutMs = 500;
    // The provider answers the opening HEARTBEAT and, 150 ms later, sends one more frame (its
    // last byte: a provider busy-looping from then on); it reads and answers nothing else.
    let lastByteAt = 0;
    const server = net.createServer(
      afterOpening((socket) => {
        socket.on('data', () => {});
        setTimeout(() => {
          socket.write(encodeFrame(FrameType.HEARTBEAT_ACK, 0));
          lastByteAt = monotonicNow();
        }, 150);
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const connection = new TcpConnection('127.0.0.1', (server.address() as net.AddressInfo).port, {
      connectTimeoutMs: 1000,
      heartbeatIntervalMs,
      heartbeatTimeoutMs,
      maxFrameBytes: 1 << 20,
      maxUnsentBytes: 1 << 20,
      backoff: DEFAULT_BACKOFF,
      streamWindowBytes: 65_536,
    });
    cleanups.push(() => connection.close());
    const call = connection.invoke(
      createInvocation({ service: 'test.Echo', method: 'echo', request: 1, deadline: monotonicNow() + 10_000 }),
      createMsgpackSerializer({}),
    );
    const failure = await rejection(call);
    const waitedMs = monotonicNow() - lastByteAt;
    expect(failure.code).toBe(RpcCode.UNAVAILABLE);
    expect(failure.message).toMatch(/did not answer a heartbeat within 500 ms/);
    expect(failure.details?.['maybeExecuted']).toBe(true);
    // Silent for the interval, then the HEARTBEAT's timeout: 1500 ms, not rounded up to the
    // connection's half-interval ticks (1850 ms here) as it was.
    expect(waitedMs).toBeGreaterThanOrEqual(heartbeatIntervalMs + heartbeatTimeoutMs - 5);
    expect(waitedMs).toBeLessThan(heartbeatIntervalMs + heartbeatTimeoutMs + 200);
  });
});

describe('a provider that stops with calls in flight', () => {
  it.each(['tcp', 'grpc'] as const)(
    '%s: its unary calls and open streams fail UNAVAILABLE as maybe executed once its heartbeats go unanswered',
    async (transport) => {
      const provider = await startFixture('provider', { PROVIDER_TRANSPORT: transport, PROVIDER_STREAM: '1' });
      cleanups.push(() => provider.stop());
      // The grpc transport's keepalive pings take these as their interval and timeout.
      const client = await createClient({
        registry: provider.url,
        transport,
        heartbeatIntervalMs: 300,
        heartbeatTimeoutMs: 300,
        timeoutMs: 10_000,
        cluster: 'failfast',
        circuitBreaker: false,
        outlierEjection: false,
        config: false,
        log: false,
      });
      cleanups.push(() => client.close());
      const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
      const streams = client.proxy<StreamApi>('test.Stream', { version: '1.0.0' });
      expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
      // A non-idempotent call running on the provider, and a stream that has delivered a chunk.
      const unary = echo.sleep({ ms: 8000 }).then(
        () => undefined,
        (error: RpcError) => error,
      );
      const chunks = streams.count({ n: 100, delayMs: 100 })[Symbol.asyncIterator]();
      expect((await chunks.next()).value).toEqual({ i: 0 });
      const rest = (async () => {
        try {
          while (!(await chunks.next()).done) {
            // Chunks until the provider stops.
          }
          return undefined;
        } catch (error) {
          return error as RpcError;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      provider.process.kill('SIGSTOP');
      cleanups.push(() => provider.process.kill('SIGCONT'));
      const stoppedAt = monotonicNow();
      const failures = await Promise.all([unary, rest]);
      for (const failure of failures) {
        expect(failure?.code).toBe(RpcCode.UNAVAILABLE);
        // The handler may have run: a caller must not simply send a non-idempotent call again.
        expect(callOutcome(failure)).toBe('maybe-executed');
      }
      expect(monotonicNow() - stoppedAt).toBeLessThan(5000);
    },
  );
});

describe('a provider whose event loop is blocked while callers give up', () => {
  it.each(['tcp', 'grpc'] as const)('%s: never starts the calls whose callers cancelled before it read them', async (transport) => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    const journal = path.join(tmp.dir, 'journal');
    const provider = await startFixture('provider', { PROVIDER_TRANSPORT: transport, PROVIDER_JOURNAL: journal });
    cleanups.push(() => provider.stop());
    const client = await createClient({ registry: provider.url, transport, cluster: 'failfast', config: false, log: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    // The provider answers, then busy-loops for 1.5 s: it reads nothing meanwhile.
    await echo.spin({ ms: 1500, afterMs: 50 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Non-idempotent calls whose callers give up at 400 ms: each CANCEL waits behind its request.
    const calls = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        echo.record({ id: `late-${i}`, ms: 1 }, { timeoutMs: 400 }).then(
          () => undefined,
          (error: RpcError) => error,
        ),
      ),
    );
    for (const failure of calls) expect(failure?.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    // Once the loop is free again the provider reads the requests and their cancels together.
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(await echo.add({ a: 2, b: 2 })).toEqual({ sum: 4 });
    expect(existsSync(journal) ? readFileSync(journal, 'utf8') : '').toBe('');
    expect((await echo.invocations())['record']).toBeUndefined();
  });
});
