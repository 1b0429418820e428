import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../../src/transport/decoder.js';
import { encodeFrame, FrameType, type Frame } from '../../../src/transport/frame.js';

function sampleStream(): { bytes: Buffer; expected: Array<{ type: number; id: number; body: string }> } {
  const frames = [
    encodeFrame(FrameType.REQUEST, 1, Buffer.from('first request'), { serializer: 1 }),
    encodeFrame(FrameType.HEARTBEAT, 0),
    encodeFrame(FrameType.RESPONSE, 2 ** 33, Buffer.from('x'.repeat(300)), { serializer: 2, status: 0 }),
    encodeFrame(FrameType.CANCEL, 7),
    encodeFrame(FrameType.REQUEST, 8, Buffer.from([0, 1, 2, 3, 255]), { serializer: 1 }),
  ];
  return {
    bytes: Buffer.concat(frames),
    expected: [
      { type: 1, id: 1, body: Buffer.from('first request').toString('hex') },
      { type: 6, id: 0, body: '' },
      { type: 2, id: 2 ** 33, body: Buffer.from('x'.repeat(300)).toString('hex') },
      { type: 5, id: 7, body: '' },
      { type: 1, id: 8, body: '00010203ff' },
    ],
  };
}

function decodeChunks(chunks: Buffer[]): Array<{ type: number; id: number; body: string }> {
  const decoder = new FrameDecoder(1024 * 1024);
  const out: Frame[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => out.push(frame));
  expect(decoder.bufferedBytes).toBe(0);
  return out.map((frame) => ({ type: frame.type, id: frame.requestId, body: frame.body.toString('hex') }));
}

describe('FrameDecoder', () => {
  const { bytes, expected } = sampleStream();

  it('decodes all frames delivered in one chunk (sticky packets)', () => {
    expect(decodeChunks([bytes])).toEqual(expected);
  });

  it('decodes the same frames for every single split point (half packets)', () => {
    for (let split = 1; split < bytes.length; split++) {
      expect(decodeChunks([bytes.subarray(0, split), bytes.subarray(split)]), `split at ${split}`).toEqual(expected);
    }
  });

  it('decodes the same frames for every pair of split points', () => {
    // Every way to cut the stream into three pieces; about 100k decodes of a 420-byte stream.
    // Comparing JSON first keeps this fast; a mismatch is then reported in full by toEqual.
    const want = JSON.stringify(expected);
    for (let a = 1; a < bytes.length; a += 1) {
      for (let b = a + 1; b < bytes.length; b += 1) {
        const got = decodeChunks([bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)]);
        if (JSON.stringify(got) !== want) expect(got, `splits at ${a}, ${b}`).toEqual(expected);
      }
    }
    expect(decodeChunks([bytes.subarray(0, 19), bytes.subarray(19, 21), bytes.subarray(21)])).toEqual(expected);
  });

  it('decodes the stream fed one byte at a time', () => {
    expect(decodeChunks([...bytes].map((byte) => Buffer.from([byte])))).toEqual(expected);
  });

  it('rejects an oversized declared length from the header alone, without buffering the body', () => {
    const decoder = new FrameDecoder(1024);
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(4 * 1024 ** 3 - 1, 16);
    expect(() => decoder.push(header, () => {})).toThrow(/declared body length 4294967295 exceeds maxFrameBytes 1024/);
    expect(decoder.bufferedBytes).toBe(0);
    // A spent decoder keeps failing rather than resynchronising on garbage.
    expect(() => decoder.push(encodeFrame(FrameType.HEARTBEAT, 0), () => {})).toThrow(/exceeds maxFrameBytes/);
  });

  it('rejects a bad header even when it arrives in pieces', () => {
    const decoder = new FrameDecoder(1024);
    const frame = encodeFrame(FrameType.HEARTBEAT, 0);
    frame[0] = 0;
    decoder.push(frame.subarray(0, 10), () => {});
    expect(() => decoder.push(frame.subarray(10), () => {})).toThrow(/bad magic/);
  });

  it('handles many zero-length frames in one chunk without spinning', () => {
    const many = Buffer.concat(Array.from({ length: 1000 }, (_, i) => encodeFrame(FrameType.HEARTBEAT, i)));
    const got = decodeChunks([many]);
    expect(got).toHaveLength(1000);
    expect(got[999]).toEqual({ type: 6, id: 999, body: '' });
  });

  it('holds a trickled frame in one buffer of at most four times the bytes received, not one buffer per chunk', () => {
    const decoder = new FrameDecoder(8 * 1024 * 1024);
    const header = encodeFrame(FrameType.REQUEST, 1).subarray(0, 20);
    header.writeUInt32BE(8 * 1024 * 1024, 16);
    for (const byte of header) decoder.push(Buffer.from([byte]), () => {});
    const one = Buffer.from([7]);
    for (let received = 1; received <= 200_000; received++) {
      decoder.push(one, () => {});
      if (received % 10_000 === 0) expect(decoder.bufferedBytes).toBeLessThanOrEqual(Math.max(64 * 1024, 4 * received));
    }
    expect(decoder.inFrame).toBe(true);
    expect(decoder.frames).toBe(0);
  });

  it('gives a body its whole size at once when little is left (one allocation for a 64 KiB answer in two reads), and reserves at most 25 % ahead of a stalled one', () => {
    const decoder = new FrameDecoder(16 * 1024 * 1024);
    const frame = encodeFrame(FrameType.RESPONSE, 1, Buffer.alloc(64 * 1024 + 5, 7), { serializer: 1, status: 0 });
    const out: Frame[] = [];
    decoder.push(frame.subarray(0, 64 * 1024), (made) => out.push(made));
    // The body's whole 65,541 bytes are reserved by the first read, not 64 KiB then again.
    expect(decoder.bufferedBytes).toBe(64 * 1024 + 5);
    decoder.push(frame.subarray(64 * 1024), (made) => out.push(made));
    expect(out[0]!.body.equals(Buffer.alloc(64 * 1024 + 5, 7))).toBe(true);
    // A declared 8 MiB body of which 1 MiB arrived: at most four times that is reserved, not 8 MiB.
    const stalled = encodeFrame(FrameType.RESPONSE, 2, Buffer.alloc(8 * 1024 * 1024, 1), { serializer: 1, status: 0 });
    decoder.push(stalled.subarray(0, 1024 * 1024 + 100), () => {});
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(1.25 * 4 * 1024 * 1024);
    expect(decoder.bufferedBytes).toBeGreaterThanOrEqual(1024 * 1024);
  });

  it('grows a partial frame’s buffer ahead of its bytes only as far as growthAllowance, and still completes the frame', () => {
    const body = Buffer.alloc(3 * 64 * 1024 + 17);
    for (let i = 0; i < body.length; i++) body[i] = i % 253;
    const frame = encodeFrame(FrameType.REQUEST, 1, body, { serializer: 1 });
    const reads = [frame.subarray(0, 64 * 1024), frame.subarray(64 * 1024, 128 * 1024), frame.subarray(128 * 1024)];
    const free = new FrameDecoder(16 * 1024 * 1024);
    free.push(reads[0]!, () => {});
    free.push(reads[1]!, () => {});
    // Without a limit the second read grows the buffer fourfold, past the bytes held.
    expect(free.bufferedBytes).toBeGreaterThan(128 * 1024);
    const tight = new FrameDecoder(16 * 1024 * 1024);
    tight.growthAllowance = 0;
    const out: Frame[] = [];
    // A spent budget: the buffer is exactly the body bytes received (the 20-byte header is not kept).
    tight.push(reads[0]!, (made) => out.push(made));
    expect(tight.bufferedBytes).toBe(64 * 1024 - 20);
    tight.push(reads[1]!, (made) => out.push(made));
    expect(tight.bufferedBytes).toBe(128 * 1024 - 20);
    tight.push(reads[2]!, (made) => out.push(made));
    expect(out).toHaveLength(1);
    expect(out[0]!.body.equals(body)).toBe(true);
    expect(tight.bufferedBytes).toBe(0);
    const some = new FrameDecoder(16 * 1024 * 1024);
    some.growthAllowance = 10_000;
    some.push(reads[0]!, () => {});
    expect(some.bufferedBytes).toBeLessThanOrEqual(64 * 1024 - 20 + 10_000);
  });

  it('completes a frame split over growing chunks with the exact body', () => {
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const frame = encodeFrame(FrameType.REQUEST, 9, body, { serializer: 1 });
    const chunks: Buffer[] = [];
    for (let offset = 0, size = 1; offset < frame.length; offset += size, size *= 3) chunks.push(frame.subarray(offset, offset + size));
    const decoder = new FrameDecoder(1024 * 1024);
    const out: Frame[] = [];
    for (const chunk of chunks) decoder.push(chunk, (decoded) => out.push(decoded));
    expect(out).toHaveLength(1);
    expect(out[0]!.body.equals(body)).toBe(true);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('pauses after the frame being handed out and hands out the rest on resume, in order', () => {
    const decoder = new FrameDecoder(1024 * 1024);
    const ids: number[] = [];
    const onFrame = (frame: Frame): void => {
      ids.push(frame.requestId);
      if (frame.requestId === 2) decoder.pause();
    };
    decoder.push(bytes.subarray(0, 0), onFrame);
    const frames = Buffer.concat([1, 2, 3, 4].map((id) => encodeFrame(FrameType.CANCEL, id)));
    decoder.push(frames.subarray(0, 50), onFrame);
    expect(ids).toEqual([1, 2]);
    expect(decoder.paused).toBe(true);
    decoder.push(frames.subarray(50), onFrame);
    expect(ids).toEqual([1, 2]);
    expect(decoder.bufferedBytes).toBe(40);
    decoder.resume(onFrame);
    expect(ids).toEqual([1, 2, 3, 4]);
    expect(decoder.bufferedBytes).toBe(0);
    expect(decoder.frames).toBe(4);
  });
});
