import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { FLUSH_BYTES, FrameWriter, STREAM_FLUSH_BYTES } from '../../../src/transport/tcp/frame-writer.js';

/** The part of a socket FrameWriter uses, recording what reaches the kernel in which slice. */
function recordingSocket() {
  const slices: number[] = [];
  let corked = 0;
  let current = 0;
  const socket = {
    destroyed: false,
    writable: true,
    writableLength: 0,
    cork: () => void corked++,
    uncork: () => {
      corked--;
      if (corked === 0 && current > 0) {
        slices.push(current);
        current = 0;
      }
    },
    write: (frame: Uint8Array) => {
      if (corked > 0) current += frame.length;
      else slices.push(frame.length);
      return true;
    },
  };
  return { socket: socket as unknown as net.Socket, slices };
}

describe('FrameWriter', () => {
  it('sends one tick of unary frames in slices of FLUSH_BYTES, so the peer starts on the first while the rest is made', async () => {
    const { socket, slices } = recordingSocket();
    const writer = new FrameWriter(socket);
    const frame = new Uint8Array(100);
    for (let i = 0; i < 50; i++) writer.write(frame);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(slices.reduce((sum, size) => sum + size, 0)).toBe(5000);
    expect(slices).toEqual([Math.ceil(FLUSH_BYTES / 100) * 100, Math.ceil(FLUSH_BYTES / 100) * 100, 5000 - 2 * Math.ceil(FLUSH_BYTES / 100) * 100]);
  });

  it('sends stream chunks in the larger STREAM_FLUSH_BYTES slices, and a small tick in one write at its end', async () => {
    const { socket, slices } = recordingSocket();
    const writer = new FrameWriter(socket);
    const chunk = new Uint8Array(30);
    for (let i = 0; i < 1000; i++) writer.writeStream(chunk);
    await new Promise((resolve) => setImmediate(resolve));
    expect(slices.slice(0, -1).every((size) => size >= STREAM_FLUSH_BYTES && size < STREAM_FLUSH_BYTES + 30)).toBe(true);
    expect(slices.reduce((sum, size) => sum + size, 0)).toBe(30_000);
    slices.length = 0;
    writer.write(new Uint8Array(40));
    writer.write(new Uint8Array(40));
    expect(slices).toEqual([]);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(slices).toEqual([80]);
  });

  it('holds stream chunks written in separate ticks of one turn until the turn ends, and sends them in one write', async () => {
    const { socket, slices } = recordingSocket();
    const writer = new FrameWriter(socket);
    // Three reads of one turn (three I/O callbacks), each relaying a chunk of its own stream.
    for (let i = 0; i < 3; i++) {
      writer.writeStream(new Uint8Array(30));
      await new Promise((resolve) => process.nextTick(resolve));
    }
    expect(slices).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(slices).toEqual([90]);
  });

  it('sends held stream chunks at the end of the tick when a unary frame is written in it', async () => {
    const { socket, slices } = recordingSocket();
    const writer = new FrameWriter(socket);
    writer.writeStream(new Uint8Array(30));
    writer.write(new Uint8Array(40));
    await new Promise((resolve) => process.nextTick(resolve));
    expect(slices).toEqual([70]);
    // The turn's flush finds nothing left.
    await new Promise((resolve) => setImmediate(resolve));
    expect(slices).toEqual([70]);
  });
});
