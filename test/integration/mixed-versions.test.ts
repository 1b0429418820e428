import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index.js';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { FrameFlag, FrameType, encodeFrame } from '../../src/transport/frame.js';
import { WINDOW_META, encodeWindowUpdate } from '../../src/transport/stream-frames.js';
import { TIMEOUT_META } from '../../src/transport/transport.js';
import { requestFrame, unpack } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

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
