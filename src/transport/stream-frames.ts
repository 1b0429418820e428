import { RpcCode, RpcError } from '../errors/errors.js';
import { FrameType, HEADER_BYTES, encodeFrame, writeHeader } from './frame.js';

/*
 * Bodies of the streaming frames (docs/PROTOCOL.md, "Streams"):
 *
 *   STREAM_CHUNK   u32 sequence number (0, 1, 2, …), then the chunk in the call's serializer
 *   STREAM_END     status 0: u32 number of chunks sent, then the trailer in the call's
 *                  serializer (empty: none); status ≠ 0: the JSON error body of RESPONSE
 *   WINDOW_UPDATE  u32 credit increment in bytes
 */

/** Meta key of a streaming REQUEST: the consumer's initial flow-control window, in bytes. */
export const WINDOW_META = 'shuttle-window';

/**
 * The credit a provider gives a stream whose consumer asked for `requested` bytes, under the
 * provider's `cap` (`limits.maxStreamWindowBytes`). The consumer asks; the provider may give
 * less, but never less than half the request: a consumer may grant credit back only once its
 * reader has taken half its window (this build's consumers grant sooner, see {@link grantStep};
 * other builds' do not), so a provider holding less than that could wait for a WINDOW_UPDATE
 * that never comes, and the stream would hang until its deadline (a consumer asking for 4 MiB
 * behind a 1 MiB cap stopped after 1 MiB).
 */
export function providerWindow(requested: number, cap: number): number {
  return Math.min(requested, Math.max(cap, Math.ceil(requested / 2)));
}

/**
 * The most chunk bytes a consumer takes before it grants them back: half its window, and at
 * most 32 KiB. A provider may hold less credit than the consumer asked for (its cap; at least
 * 64 KiB, as its limits allow), so waiting for half of a large window could wait for bytes the
 * provider never sends; half of the smallest cap always comes. A 32 KiB step costs one 24-byte
 * WINDOW_UPDATE per 32 KiB read.
 */
export function grantStep(window: number): number {
  return Math.min(window / 2, MAX_GRANT_STEP);
}

/** See {@link grantStep}. */
export const MAX_GRANT_STEP = 32 * 1024;

/** A STREAM_CHUNK frame: header, sequence number, payload. */
export function encodeChunkFrame(requestId: number, serializer: number, sequence: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + 4 + payload.length);
  writeHeader(frame, 0, FrameType.STREAM_CHUNK, 0, serializer, 0, requestId, 4 + payload.length);
  frame.writeUInt32BE(sequence >>> 0, HEADER_BYTES);
  frame.set(payload, HEADER_BYTES + 4);
  return frame;
}

/** A successful STREAM_END frame: chunk count and trailer. */
export function encodeEndFrame(requestId: number, serializer: number, chunks: number, trailer: Uint8Array): Buffer {
  const body = Buffer.allocUnsafe(4 + trailer.length);
  body.writeUInt32BE(chunks >>> 0, 0);
  body.set(trailer, 4);
  return encodeFrame(FrameType.STREAM_END, requestId, body, { serializer, status: RpcCode.OK });
}

/** A WINDOW_UPDATE frame granting `increment` more bytes. */
export function encodeWindowUpdate(requestId: number, increment: number): Buffer {
  const body = Buffer.allocUnsafe(4);
  body.writeUInt32BE(increment >>> 0, 0);
  return encodeFrame(FrameType.WINDOW_UPDATE, requestId, body);
}

/** Reads a u32 at the start of a stream frame body; a short body is a protocol error. */
export function readU32(body: Buffer, what: string): number {
  if (body.length < 4) throw new RpcError(RpcCode.INTERNAL, `protocol error: ${what} body is ${body.length} bytes, needs at least 4`);
  return body.readUInt32BE(0);
}
