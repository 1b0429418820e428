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
    for (let i = 0; i < 1000; i++) writer.write(chunk, STREAM_FLUSH_BYTES);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(slices.slice(0, -1).every((size) => size >= STREAM_FLUSH_BYTES && size < STREAM_FLUSH_BYTES + 30)).toBe(true);
    expect(slices.reduce((sum, size) => sum + size, 0)).toBe(30_000);
    slices.length = 0;
    writer.write(new Uint8Array(40));
    writer.write(new Uint8Array(40));
    expect(slices).toEqual([]);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(slices).toEqual([80]);
  });
});
