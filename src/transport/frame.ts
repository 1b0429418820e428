import { RpcCode, RpcError } from '../errors/errors.js';

/*
 * The tcp transport's frame: a fixed 20-byte big-endian header, then the body.
 * docs/PROTOCOL.md documents every byte; test/unit/transport/frame.test.ts pins the layout.
 */

/** Bytes in a frame header. */
export const HEADER_BYTES = 20;
/** "SH": the first two bytes of every frame. */
export const MAGIC = 0x5348;
/** The only protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** Frame types (header byte 3). */
export const FrameType = {
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
} as const;
/** One of the values of {@link FrameType}. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Flag bits (header byte 4). */
export const FrameFlag = { ONE_WAY: 0b001, STREAM: 0b010, COMPRESSED: 0b100 } as const;
/** Flags this build understands; any other bit set is a protocol error. */
export const KNOWN_FLAGS = FrameFlag.ONE_WAY | FrameFlag.STREAM;

/** A decoded frame. `body` is a view into the received bytes, valid until the handler returns. */
export interface Frame {
  readonly type: FrameType;
  readonly flags: number;
  readonly serializer: number;
  readonly status: number;
  /** The u64 request id; this build keeps ids below 2^53 and rejects larger ones. */
  readonly requestId: number;
  readonly body: Buffer;
}

const TWO_POW_32 = 2 ** 32;
/** The largest high word that keeps a u64 id exactly representable as a JS number. */
const MAX_ID_HIGH = 2 ** 21 - 1;

/** A violation of the framing rules: the connection that sent it is closed. */
export function protocolError(message: string): RpcError {
  return new RpcError(RpcCode.INTERNAL, `protocol error: ${message}`, { details: { protocol: true } });
}

/** Writes a header into `target` at `offset`. `bodyLength` must fit a u32. */
export function writeHeader(
  target: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  serializer: number,
  status: number,
  requestId: number,
  bodyLength: number,
): void {
  target.writeUInt16BE(MAGIC, offset);
  target[offset + 2] = PROTOCOL_VERSION;
  target[offset + 3] = type;
  target[offset + 4] = flags;
  target[offset + 5] = serializer;
  target[offset + 6] = status;
  target[offset + 7] = 0;
  target.writeUInt32BE(Math.floor(requestId / TWO_POW_32), offset + 8);
  target.writeUInt32BE(requestId >>> 0, offset + 12);
  target.writeUInt32BE(bodyLength, offset + 16);
}

/** Encodes one whole frame (header and body) into a new buffer. */
export function encodeFrame(
  type: FrameType,
  requestId: number,
  body: Uint8Array = EMPTY,
  options: { flags?: number; serializer?: number; status?: number } = {},
): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  writeHeader(frame, 0, type, options.flags ?? 0, options.serializer ?? 0, options.status ?? 0, requestId, body.length);
  frame.set(body, HEADER_BYTES);
  return frame;
}

const EMPTY = new Uint8Array(0);

/**
 * Reads and checks the header at `offset` (at least HEADER_BYTES must be there). Throws a
 * protocol error for a bad magic, version, type, flag, reserved byte, id, or a declared body
 * length above `maxFrameBytes`; the check happens before any body byte is buffered.
 */
export function readHeader(source: Buffer, offset: number, maxFrameBytes: number): Omit<Frame, 'body'> & { bodyLength: number } {
  const magic = source.readUInt16BE(offset);
  if (magic !== MAGIC) throw protocolError(`bad magic 0x${magic.toString(16).padStart(4, '0')}, expected 0x5348`);
  const version = source[offset + 2]!;
  if (version !== PROTOCOL_VERSION) throw protocolError(`unsupported protocol version ${version}, this peer speaks ${PROTOCOL_VERSION}`);
  const type = source[offset + 3]!;
  if (type < FrameType.REQUEST || type > FrameType.LOAD) throw protocolError(`unknown frame type ${type}`);
  const flags = source[offset + 4]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) throw protocolError(`unsupported flags 0b${flags.toString(2)}`);
  if (source[offset + 7] !== 0) throw protocolError(`reserved byte is ${source[offset + 7]}, must be 0`);
  const high = source.readUInt32BE(offset + 8);
  if (high > MAX_ID_HIGH) throw protocolError('request id above 2^53');
  const bodyLength = source.readUInt32BE(offset + 16);
  if (bodyLength > maxFrameBytes) {
    throw protocolError(`declared body length ${bodyLength} exceeds maxFrameBytes ${maxFrameBytes}`);
  }
  // One comparison for the frames that carry calls (types 1-4) and LOAD.
  if (type >= FrameType.CANCEL && type <= FrameType.WINDOW_UPDATE) checkControlLength(type, source[offset + 6]!, bodyLength);
  return {
    type: type as FrameType,
    flags,
    serializer: source[offset + 5]!,
    status: source[offset + 6]!,
    requestId: high * TWO_POW_32 + source.readUInt32BE(offset + 12),
    bodyLength,
  };
}

/**
 * The control frames' bodies have fixed sizes (docs/PROTOCOL.md): CANCEL, HEARTBEAT and
 * HEARTBEAT_ACK none, WINDOW_UPDATE four bytes, a GOAWAY with status 0 (the consumer closes)
 * none; any other GOAWAY is empty (draining) or carries the error it closes for. Checked with
 * the header, before any body byte is kept, for every request id alike: a body the receiver
 * would ignore is a peer that does not speak the protocol, not padding to skip.
 */
function checkControlLength(type: number, status: number, bodyLength: number): void {
  if (type === FrameType.WINDOW_UPDATE) {
    if (bodyLength !== 4) throw protocolError(`WINDOW_UPDATE body is ${bodyLength} bytes, must be 4 (a u32 credit increment)`);
    return;
  }
  if (bodyLength === 0 || (type === FrameType.GOAWAY && status !== RpcCode.OK)) return;
  const name =
    type === FrameType.CANCEL
      ? 'CANCEL'
      : type === FrameType.HEARTBEAT
        ? 'HEARTBEAT'
        : type === FrameType.HEARTBEAT_ACK
          ? 'HEARTBEAT_ACK'
          : 'GOAWAY with status 0';
  throw protocolError(`${name} body is ${bodyLength} bytes, must be empty`);
}
