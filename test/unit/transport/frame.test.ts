import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameType, FrameFlag, HEADER_BYTES, readHeader } from '../../../src/transport/frame.js';

describe('frame header layout (pinned; see docs/PROTOCOL.md)', () => {
  it('encodes every field at its documented offset, big-endian', () => {
    const body = Buffer.from([0xaa, 0xbb, 0xcc]);
    const frame = encodeFrame(FrameType.RESPONSE, 0x0102030405, body, { flags: FrameFlag.STREAM, serializer: 1, status: 14 });
    expect([...frame]).toEqual([
      0x53,
      0x48, // magic "SH"
      0x01, // version
      0x02, // type RESPONSE
      0x02, // flags: expects a stream
      0x01, // serializer msgpack
      0x0e, // status UNAVAILABLE
      0x00, // reserved
      0x00,
      0x00,
      0x00,
      0x01,
      0x02,
      0x03,
      0x04,
      0x05, // request id, u64
      0x00,
      0x00,
      0x00,
      0x03, // body length
      0xaa,
      0xbb,
      0xcc,
    ]);
    expect(HEADER_BYTES).toBe(20);
  });

  it('numbers frame types as the design says', () => {
    expect(FrameType).toEqual({
      REQUEST: 1,
      RESPONSE: 2,
      STREAM_CHUNK: 3,
      STREAM_END: 4,
      CANCEL: 5,
      HEARTBEAT: 6,
      HEARTBEAT_ACK: 7,
      GOAWAY: 8,
      WINDOW_UPDATE: 9,
      LOAD: 10,
    });
  });

  it('reads back what it wrote, including a request id above 2^32', () => {
    const frame = encodeFrame(FrameType.REQUEST, 2 ** 40 + 7, Buffer.alloc(5), { serializer: 2, flags: FrameFlag.ONE_WAY });
    expect(readHeader(frame, 0, 1024)).toEqual({ type: 1, flags: 1, serializer: 2, status: 0, requestId: 2 ** 40 + 7, bodyLength: 5 });
  });

  const bad: Array<[string, (frame: Buffer) => void, RegExp]> = [
    ['bad magic', (f) => f.writeUInt16BE(0x4854, 0), /bad magic 0x4854/],
    ['unknown version', (f) => (f[2] = 2), /unsupported protocol version 2/],
    ['frame type 0', (f) => (f[3] = 0), /unknown frame type 0/],
    ['frame type 11', (f) => (f[3] = 11), /unknown frame type 11/],
    ['compressed flag (unsupported)', (f) => (f[4] = FrameFlag.COMPRESSED), /unsupported flags/],
    ['reserved byte set', (f) => (f[7] = 1), /reserved byte is 1/],
    ['request id above 2^53', (f) => f.writeUInt32BE(0xffffffff, 8), /request id above 2\^53/],
    ['body length above the limit', (f) => f.writeUInt32BE(1025, 16), /declared body length 1025 exceeds maxFrameBytes 1024/],
  ];
  it.each(bad)('rejects %s with a protocol error', (_name, corrupt, message) => {
    const frame = encodeFrame(FrameType.REQUEST, 1);
    corrupt(frame);
    expect(() => readHeader(frame, 0, 1024)).toThrow(message);
  });
});

describe('control frame bodies (checked with the header)', () => {
  const read = (frame: Buffer): unknown => readHeader(frame, 0, 1 << 20);

  it('refuses a body on CANCEL, HEARTBEAT, HEARTBEAT_ACK and a status-0 GOAWAY, naming the frame and the size', () => {
    expect(() => read(encodeFrame(FrameType.CANCEL, 1, Buffer.alloc(1)))).toThrow(/CANCEL body is 1 bytes, must be empty/);
    expect(() => read(encodeFrame(FrameType.HEARTBEAT, 1, Buffer.alloc(2)))).toThrow(/HEARTBEAT body is 2 bytes, must be empty/);
    expect(() => read(encodeFrame(FrameType.HEARTBEAT_ACK, 1, Buffer.alloc(3)))).toThrow(/HEARTBEAT_ACK body is 3 bytes, must be empty/);
    expect(() => read(encodeFrame(FrameType.GOAWAY, 0, Buffer.from('{}')))).toThrow(/GOAWAY with status 0 body is 2 bytes, must be empty/);
  });

  it('refuses a WINDOW_UPDATE whose body is not 4 bytes, whatever its request id', () => {
    for (const size of [0, 3, 5, 8]) {
      expect(() => read(encodeFrame(FrameType.WINDOW_UPDATE, 123_456, Buffer.alloc(size)))).toThrow(`WINDOW_UPDATE body is ${size} bytes, must be 4`);
    }
    expect(read(encodeFrame(FrameType.WINDOW_UPDATE, 123_456, Buffer.alloc(4)))).toMatchObject({ bodyLength: 4 });
  });

  it('takes the control frames as the protocol sends them, and a GOAWAY carrying the error it closes for', () => {
    for (const type of [FrameType.CANCEL, FrameType.HEARTBEAT, FrameType.HEARTBEAT_ACK, FrameType.GOAWAY]) {
      expect(read(encodeFrame(type, 1))).toMatchObject({ type, bodyLength: 0 });
    }
    expect(read(encodeFrame(FrameType.GOAWAY, 0, undefined, { status: 14 }))).toMatchObject({ status: 14, bodyLength: 0 });
    expect(read(encodeFrame(FrameType.GOAWAY, 0, Buffer.from('{"message":"idle"}'), { status: 14 }))).toMatchObject({ status: 14, bodyLength: 18 });
    expect(read(encodeFrame(FrameType.GOAWAY, 0, Buffer.from('{"message":"x"}'), { status: 13 }))).toMatchObject({ status: 13 });
  });
});
