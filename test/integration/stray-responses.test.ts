import net from 'node:net';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/common/backoff.js';
import { createMsgpackSerializer } from '../../src/serializer/msgpack.js';
import { FrameDecoder } from '../../src/transport/decoder.js';
import { FrameType, HEADER_BYTES, writeHeader } from '../../src/transport/frame.js';
import { TcpConnection } from '../../src/transport/tcp/tcp-connection.js';
import { createInvocation, type Invocation } from '../../src/call/invocation.js';
import { afterOpening } from '../helpers/frames.js';

/*
 * A provider that answers with ids nobody asked for, and answers twice: the consumer drops
 * and counts those frames, and they never settle any call.
 */
const packr = new Packr({ useRecords: false, moreTypes: true });
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function response(id: number, value: unknown): Buffer {
  const payload = packr.pack(value);
  const frame = Buffer.alloc(HEADER_BYTES + payload.length);
  writeHeader(frame, 0, FrameType.RESPONSE, 0, 1, 0, id, payload.length);
  payload.copy(frame, HEADER_BYTES);
  return frame;
}

function invocation(request: unknown): Invocation {
  return createInvocation({ service: 'test.Echo', method: 'echo', request, deadline: Date.now() + 3000 });
}

describe('stray responses', () => {
  it('unknown and duplicate ids are dropped and counted, and never resolve another call', async () => {
    // The hostile provider: for every request, first an answer for an id never sent, then the
    // real answer, then the same answer again with other content; the second request's answer
    // is held back until the first call has settled.
    const held: Array<() => void> = [];
    const server = net.createServer(
      afterOpening((socket) => {
        const decoder = new FrameDecoder(1 << 20);
        socket.on('data', (chunk: Buffer) =>
          decoder.push(chunk, (frame) => {
            if (frame.type !== FrameType.REQUEST) return;
            const id = frame.requestId;
            const answer = (): void => {
              socket.write(response(id + 1000, 'made up'));
              socket.write(response(id, `answer to ${id}`));
              socket.write(response(id, 'duplicate'));
            };
            if (id === 1) answer();
            else held.push(answer);
          }),
        );
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const connection = new TcpConnection('127.0.0.1', port, {
      connectTimeoutMs: 1000,
      heartbeatIntervalMs: 10_000,
      heartbeatTimeoutMs: 5000,
      maxFrameBytes: 1 << 20,
      maxUnsentBytes: 1 << 22,
      backoff: DEFAULT_BACKOFF,
      streamWindowBytes: 65_536,
    });
    cleanups.push(() => void connection.close());
    const serializer = createMsgpackSerializer({});
    const first = connection.invoke(invocation('one'), serializer);
    const second = connection.invoke(invocation('two'), serializer);
    let secondSettled = false;
    void second.finally(() => (secondSettled = true));
    expect(await first).toBe('answer to 1');
    // The made-up id and the duplicate of the first answer arrived; neither touched call 2.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(connection.droppedFrames).toBe(2);
    expect(secondSettled).toBe(false);
    held.shift()!();
    expect(await second).toBe('answer to 2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(connection.droppedFrames).toBe(4);
  });
});
