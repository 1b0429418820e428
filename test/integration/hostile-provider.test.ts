import net from 'node:net';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/common/backoff.js';
import { createInvocation, type Invocation } from '../../src/call/invocation.js';
import { createMsgpackSerializer } from '../../src/serializer/msgpack.js';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { encodeFrame, FrameType, type Frame } from '../../src/transport/frame.js';
import { TcpConnection } from '../../src/transport/tcp/tcp-connection.js';
import type { ConnectOptions } from '../../src/transport/transport.js';
import { RpcCode, type RpcError } from '../../src/errors/errors.js';
import { rejection, waitUntil } from '../helpers/wait.js';
import { afterOpening } from '../helpers/frames.js';

/*
 * A provider that breaks the protocol on purpose, over a real loopback socket, against a
 * consumer connection: what it can make the consumer hold, and for how long it can hold the
 * consumer's event loop, stays bounded; the calls beside the attack keep working.
 */
const packr = new Packr({ useRecords: false, moreTypes: true });
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A raw provider: `onSocket` gets each connection and every frame the consumer sends on it. */
async function rawProvider(onSocket: (socket: net.Socket, onFrame: (handler: (frame: Frame) => void) => void) => void): Promise<number> {
  const server = net.createServer(
    afterOpening((socket) => {
      const decoder = new FrameDecoder(1 << 24);
      let handler: (frame: Frame) => void = () => {};
      socket.on('data', (chunk: Buffer) => decoder.push(chunk, (frame) => handler(frame)));
      onSocket(socket, (next) => (handler = next));
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

function connect(port: number, extra: Partial<ConnectOptions> = {}): TcpConnection {
  const connection = new TcpConnection('127.0.0.1', port, {
    connectTimeoutMs: 1000,
    heartbeatIntervalMs: 10_000,
    heartbeatTimeoutMs: 5000,
    maxFrameBytes: 8 << 20,
    maxUnsentBytes: 4 << 20,
    backoff: DEFAULT_BACKOFF,
    streamWindowBytes: 65_536,
    ...extra,
  });
  cleanups.push(() => void connection.close());
  return connection;
}

function invocation(request: unknown, timeoutMs = 3000): Invocation {
  return createInvocation({ service: 'test.Echo', method: 'echo', request, deadline: Date.now() + timeoutMs });
}

/** The request value of a REQUEST body (its routing head skipped). */
function unpackRequest(body: Buffer): unknown {
  let offset = 0;
  for (let field = 0; field < 4; field++) offset += 1 + body[offset]!;
  const entries = body[offset++]!;
  for (let entry = 0; entry < entries; entry++) {
    offset += 1 + body[offset]!;
    offset += 2 + body.readUInt16BE(offset);
  }
  return packr.unpack(body.subarray(offset));
}

function answer(id: number, value: unknown): Buffer {
  return encodeFrame(FrameType.RESPONSE, id, packr.pack(value), { serializer: 1 });
}

describe('a hostile provider', () => {
  it('heartbeats sent just under the budget by a provider that reads nothing get a bounded number of answers', async () => {
    // The provider answers the first call, then stops reading its socket and sends 90
    // heartbeats every 100 ms for 2 s (a full-speed flood is closed at the budget of frames
    // that do no work, see below); then it reads again and counts the answers the consumer
    // queued for it meanwhile. Each unanswered heartbeat used to queue a 20-byte HEARTBEAT_ACK:
    // millions of them in 2 s at full speed (1.4 GB of consumer memory in 12 s).
    const FLOOD_MS = 2000;
    let sent = 0;
    let acks = 0;
    let flooding: Promise<void> | undefined;
    const port = await rawProvider((socket, onFrame) => {
      onFrame((frame) => {
        if (frame.type === FrameType.HEARTBEAT_ACK) acks++;
        if (frame.type !== FrameType.REQUEST) return;
        socket.write(answer(frame.requestId, 'first'));
        if (flooding !== undefined) return;
        socket.pause();
        const heartbeats = Buffer.concat(Array.from({ length: 90 }, (_, i) => encodeFrame(FrameType.HEARTBEAT, i)));
        const until = Date.now() + FLOOD_MS;
        flooding = (async () => {
          while (Date.now() < until && !socket.destroyed) {
            sent += 90;
            socket.write(heartbeats);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          socket.resume();
        })();
      });
    });
    const connection = connect(port);
    const serializer = createMsgpackSerializer({});
    expect(await connection.invoke(invocation('one'), serializer)).toBe('first');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await flooding;
    // Everything the consumer queued is now read; a call after the flood is answered.
    expect(await connection.invoke(invocation('two'), serializer)).toBe('first');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sent).toBeGreaterThan(1000);
    expect(connection.protocolErrors).toBe(0);
    // One answer per 100 ms at most: ~20 in 2 s (the bound leaves room for a loaded runner).
    expect(acks).toBeGreaterThan(0);
    expect(acks).toBeLessThanOrEqual(FLOOD_MS / 100 + 5);
  });

  it('frames that do no work flooded at full speed (heartbeats, their answers, answers for no call, GOAWAYs, LOADs): the consumer closes the connection with a GOAWAY saying why; calls to another provider go on', async () => {
    const report = Buffer.from(
      JSON.stringify({ timestamp: 1, running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 5, draining: false }),
    );
    const kinds: Array<[string, (i: number) => Buffer]> = [
      ['HEARTBEAT', (i) => encodeFrame(FrameType.HEARTBEAT, i)],
      ['HEARTBEAT_ACK', (i) => encodeFrame(FrameType.HEARTBEAT_ACK, i)],
      ['RESPONSE for no call', (i) => answer(1_000_000 + i, 'stray')],
      ['STREAM_CHUNK for no call', (i) => encodeFrame(FrameType.STREAM_CHUNK, 1_000_000 + i, Buffer.from([0, 0, 0, 0, 0xc0]), { serializer: 1 })],
      ['GOAWAY', () => encodeFrame(FrameType.GOAWAY, 0, undefined, { status: RpcCode.UNAVAILABLE })],
      ['LOAD', () => encodeFrame(FrameType.LOAD, 0, report, { serializer: 2 })],
    ];
    const FLOOD_MS = 3000;
    const results = kinds.map(() => ({ sent: 0, goaway: undefined as Frame | undefined, closedAfter: -1 }));
    const ports = await Promise.all(
      kinds.map(([, frame], k) =>
        rawProvider((socket, onFrame) => {
          let flooding = false;
          onFrame((received) => {
            if (received.type === FrameType.GOAWAY) results[k]!.goaway = received;
            if (received.type !== FrameType.REQUEST) return;
            socket.write(answer(received.requestId, 'first'));
            if (flooding) return;
            flooding = true;
            const batch = Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(i)));
            const started = Date.now();
            socket.once('close', () => (results[k]!.closedAfter = Date.now() - started));
            void (async () => {
              while (Date.now() - started < FLOOD_MS && !socket.destroyed) {
                results[k]!.sent += 1000;
                if (!socket.write(batch)) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
                await new Promise((resolve) => setImmediate(resolve));
              }
            })();
          });
        }),
      ),
    );
    // An honest provider beside them: its calls are what the floods must not starve.
    const honestPort = await rawProvider((socket, onFrame) => {
      onFrame((received) => {
        if (received.type === FrameType.REQUEST) socket.write(answer(received.requestId, unpackRequest(received.body)));
      });
    });
    const serializer = createMsgpackSerializer({});
    const floodedConnections = ports.map((port) => connect(port, { onLoad: () => {} }));
    const honest = connect(honestPort);
    await Promise.all(floodedConnections.map(async (connection) => expect(await connection.invoke(invocation('one'), serializer)).toBe('first')));
    const started = Date.now();
    let answered = 0;
    while (Date.now() - started < 1000) {
      expect(await honest.invoke(invocation(answered, 1000), serializer)).toBe(answered);
      answered++;
    }
    await waitUntil(() => results.every((result) => result.closedAfter >= 0), 'every flooding connection to be closed', 3000);
    for (const [k, [kind]] of kinds.entries()) {
      const result = results[k]!;
      expect(floodedConnections[k]!.protocolErrors, kind).toBe(1);
      expect(result.goaway?.status, kind).toBe(RpcCode.RESOURCE_EXHAUSTED);
      expect(JSON.parse(result.goaway!.body.toString()).message, kind).toMatch(/the provider sent more than 1000 frames that do no work/);
      expect(result.closedAfter, kind).toBeLessThan(1500);
    }
    console.log(`consumer no-op floods: closed after ${results.map((result) => result.closedAfter).join(', ')} ms; honest provider ${answered} calls in 1 s`);
    expect(answered).toBeGreaterThan(50);
  });

  it('stream chunks a provider sent before it read the CANCEL (up to the window) are not a flood', async () => {
    // The reader leaves after the first chunk; the provider then sends 2,600 one-byte chunks,
    // all within the credit it had (64 KiB), for a stream the consumer no longer knows.
    let strays = 0;
    const port = await rawProvider((socket, onFrame) => {
      onFrame((frame) => {
        if (frame.type === FrameType.REQUEST && (frame.flags & 0b10) !== 0) {
          socket.write(encodeFrame(FrameType.STREAM_CHUNK, frame.requestId, Buffer.from([0, 0, 0, 0, 0xc0]), { serializer: 1 }));
        } else if (frame.type === FrameType.REQUEST) {
          socket.write(answer(frame.requestId, 'after'));
        } else if (frame.type === FrameType.CANCEL) {
          const chunks = Array.from({ length: 2600 }, (_, i) => {
            const body = Buffer.from([0, 0, 0, 0, 0xc0]);
            body.writeUInt32BE(i + 1, 0);
            return encodeFrame(FrameType.STREAM_CHUNK, frame.requestId, body, { serializer: 1 });
          });
          strays += chunks.length;
          socket.write(Buffer.concat(chunks));
        }
      });
    });
    const connection = connect(port);
    const serializer = createMsgpackSerializer({});
    const stream = await connection.openStream(invocation('stream'), serializer);
    for await (const value of stream) {
      expect(value).toBeNull();
      break;
    }
    await waitUntil(() => connection.droppedFrames >= strays && strays > 0, 'the stray chunks to arrive', 3000);
    expect(await connection.invoke(invocation('unary'), serializer)).toBe('after');
    expect(connection.protocolErrors).toBe(0);
    expect(connection.state).toBe('ready');
  });

  it('error answers with huge, deep or forged bodies neither hold the event loop nor reach the caller as sent', async () => {
    // Each call is answered with an error body of its own kind; without the guard, the 6 MB of
    // nesting held the consumer's event loop for 0.5 s in JSON.parse, the 7 MB message reached
    // the caller whole, and the control characters and the hint of 31 years as sent.
    const nested = `${'{"a":'.repeat(1_000_000)}1${'}'.repeat(1_000_000)}`;
    const bodies: Record<string, string> = {
      deep: `{"message":"deep","details":${nested}}`,
      long: JSON.stringify({ message: 'x'.repeat(7 * 1024 * 1024) }),
      forged: JSON.stringify({ message: 'evil\u001b[31m red\r\n{"level":50,"msg":"forged"}\u0000', retryAfterMs: 1e12, details: { ok: true } }),
      arrays: JSON.stringify({ message: 'arrays', details: { a: Array.from({ length: 1_000_000 }, () => []) } }),
      nested: `{"message":"nested","details":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
    };
    const port = await rawProvider((socket, onFrame) =>
      onFrame((frame) => {
        if (frame.type !== FrameType.REQUEST) return;
        const kind = unpackRequest(frame.body) as string;
        socket.write(encodeFrame(FrameType.RESPONSE, frame.requestId, Buffer.from(bodies[kind]!), { status: 14, serializer: 2 }));
      }),
    );
    const connection = connect(port);
    const serializer = createMsgpackSerializer({});
    expect(await rejection(connection.invoke(invocation('forged'), serializer))).toBeDefined();
    // The longest gap between 1 ms ticks while the answers are decoded is the loop's longest hold.
    let longest = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    cleanups.push(() => clearInterval(ticker));
    const errors: Record<string, RpcError> = {};
    for (const kind of Object.keys(bodies)) errors[kind] = (await rejection(connection.invoke(invocation(kind), serializer))) as RpcError;
    clearInterval(ticker);
    for (const error of Object.values(errors)) expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(errors['deep']!.message).toMatch(/error body of \d+ bytes not read: an error may carry at most 65536/);
    expect(errors['long']!.message).toMatch(/error body of \d+ bytes not read/);
    expect(errors['arrays']!.message).toMatch(/error body of \d+ bytes not read/);
    expect(errors['nested']!.message).toMatch(/unreadable error body of \d+ bytes: .*nest/i);
    expect(errors['nested']!.details).toBeUndefined();
    const forged = errors['forged']!;
    expect(forged.rawMessage).toBe('evil [31m red  {"level":50,"msg":"forged"} ');
    expect(forged.retryAfterMs).toBeUndefined();
    expect(forged.details).toEqual({ ok: true });
    expect(longest).toBeLessThan(150);
    // The connection is untouched: an error answer is an answer.
    expect(connection.state).toBe('ready');
  });

  it('an answer trickled a byte at a time is a violation once it has taken longer than a heartbeat may: the call fails then, not at its deadline', async () => {
    let trickle: NodeJS.Timeout | undefined;
    cleanups.push(() => clearInterval(trickle));
    const port = await rawProvider((socket, onFrame) => {
      onFrame((frame) => {
        if (frame.type !== FrameType.REQUEST) return;
        // An answer declaring 1 MiB: its header and a few bytes, then one byte every 20 ms (the
        // consumer has received something recently at every heartbeat check).
        const whole = answer(frame.requestId, 'x'.repeat(1 << 20));
        let sent = 64;
        socket.write(whole.subarray(0, sent));
        trickle = setInterval(() => {
          if (!socket.destroyed && sent < whole.length) socket.write(whole.subarray(sent, ++sent));
        }, 20);
      });
    });
    const connection = connect(port, { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 300 });
    const started = Date.now();
    const error = await rejection(connection.invoke(invocation('slow', 10_000), createMsgpackSerializer({})));
    expect(error).toMatchObject({ code: RpcCode.INTERNAL, message: expect.stringContaining('did not complete within 500 ms') });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(connection.protocolErrors).toBe(1);
  });

  it('LOAD frames sent just under the budget are read at most once per 5 ms; calls beside them are answered', async () => {
    // Every report is well formed, so each one read costs a JSON parse and a check of every
    // field: a flood of them (hundreds of thousands a second) used to be read in full. A flood
    // at full speed is now closed at the budget of frames that do no work (above); 40 every
    // 50 ms stays under it and is still read at most once per 5 ms.
    // 30 batches of 40, one every 50 ms (1.5 s on a quiet machine): counted, not timed, so that a
    // loaded machine stretches the flood rather than shortening it.
    const BATCHES = 30;
    const report = Buffer.from(
      JSON.stringify({ timestamp: 1, running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 5, draining: false }),
    );
    const reports = Buffer.concat(Array.from({ length: 40 }, () => encodeFrame(FrameType.LOAD, 0, report, { serializer: 2 })));
    let sent = 0;
    let flooding: Promise<void> | undefined;
    let flooded = false;
    const port = await rawProvider((socket, onFrame) => {
      onFrame((frame) => {
        if (frame.type !== FrameType.REQUEST) return;
        socket.write(answer(frame.requestId, 'answered'));
        if (flooding !== undefined) return;
        flooding = (async () => {
          for (let batch = 0; batch < BATCHES && !socket.destroyed; batch++) {
            sent += 40;
            socket.write(reports);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          flooded = true;
        })();
      });
    });
    let read = 0;
    const connection = connect(port, { onLoad: () => read++ });
    const serializer = createMsgpackSerializer({});
    const started = Date.now();
    expect(await connection.invoke(invocation('first'), serializer)).toBe('answered');
    let answered = 0;
    while (!flooded) {
      expect(await connection.invoke(invocation(answered, 1000), serializer)).toBe('answered');
      answered++;
    }
    await flooding;
    const elapsed = Date.now() - started;
    expect(sent).toBe(BATCHES * 40);
    expect(answered).toBeGreaterThan(10);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThanOrEqual(Math.ceil(elapsed / 5) + 1);
    expect(connection.droppedLoads).toBeGreaterThan(sent / 2);
    expect(connection.protocolErrors).toBe(0);
  });
});
