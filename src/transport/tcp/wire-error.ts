import { RpcCode, RpcError, isRpcCode } from '../../errors/errors.js';
import { MAX_WIRE_MESSAGE_CHARS } from '../../errors/wire-text.js';
import type { DecodeLimits } from '../../serializer/decode-limits.js';
import { checkJson } from '../../serializer/json-guard.js';
import { encodeFrame, type Frame, type FrameType } from '../frame.js';

/*
 * An error crosses the wire as a RESPONSE (or STREAM_END, or GOAWAY) whose status byte is the
 * code and whose body is UTF-8 JSON `{ "message", "details"?, "retryAfterMs"? }`, whatever the
 * call's serializer: a failed call may have failed precisely because its serializer could not
 * encode something. The stack never crosses.
 */

/**
 * The largest error body read (64 KiB): a message and details are small. A body can otherwise be
 * as large as a frame (8 MiB), and JSON.parse builds all of it at once — 6 MB of nesting held a
 * consumer's event loop for 0.5 s, 4.5 MB of empty arrays took 240 MB of heap.
 */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** What an error body may decode to, checked before it is parsed (json-guard.ts). */
const ERROR_BODY_LIMITS: DecodeLimits = {
  maxDepth: 32,
  maxElements: 8192,
  maxMapKeys: 1024,
  maxBigIntBytes: 0,
  maxDecodedBytes: 1024 * 1024,
  maxDecodeRatio: 24,
};

/** Encodes `error` as the body of an error frame. */
export function encodeErrorFrame(type: FrameType, requestId: number, error: RpcError): Buffer {
  const { code: _code, ...rest } = error.toWire();
  let body: Buffer;
  try {
    body = Buffer.from(JSON.stringify(rest), 'utf8');
  } catch {
    // details that JSON cannot encode (a cycle, a BigInt) must not lose the error itself.
    body = bareErrorBody(error);
  }
  // Details too large for the peer to read must not lose the error itself either.
  if (body.length > MAX_ERROR_BODY_BYTES) body = bareErrorBody(error);
  return encodeFrame(type, requestId, body, { status: error.code });
}

/** The message (as much of it as a peer reads) and the retry hint, without details. */
function bareErrorBody(error: RpcError): Buffer {
  const message = error.rawMessage.slice(0, MAX_WIRE_MESSAGE_CHARS);
  return Buffer.from(JSON.stringify(error.retryAfterMs === undefined ? { message } : { message, retryAfterMs: error.retryAfterMs }), 'utf8');
}

/**
 * Rebuilds the RpcError carried by an error frame; a malformed body still yields its code. A body
 * over {@link MAX_ERROR_BODY_BYTES}, or one that would decode past {@link ERROR_BODY_LIMITS}, is
 * not parsed: the error keeps its code and says why its message is missing.
 */
export function decodeWireError(frame: Frame): RpcError {
  const code = isRpcCode(frame.status) && frame.status !== RpcCode.OK ? frame.status : RpcCode.UNKNOWN;
  const size = frame.body.length;
  if (size > MAX_ERROR_BODY_BYTES) {
    return new RpcError(code, `(error body of ${size} bytes not read: an error may carry at most ${MAX_ERROR_BODY_BYTES})`);
  }
  let parsed: unknown;
  try {
    const text = frame.body.toString('utf8');
    checkJson(text, size, ERROR_BODY_LIMITS);
    parsed = JSON.parse(text);
  } catch (error) {
    const why = error instanceof RpcError ? `: ${error.rawMessage}` : '';
    return new RpcError(code, `(unreadable error body of ${size} bytes${why})`);
  }
  return RpcError.fromWire({ ...(parsed !== null && typeof parsed === 'object' ? parsed : {}), code });
}

/**
 * A message too large to send: the peer's decoder refuses a frame over its maxFrameBytes as a
 * protocol violation and closes the connection with every call on it, so the one call fails
 * here instead. Both sides take the same default limit; a side configured with a smaller one
 * than its peer still closes the connection on the larger message.
 */
export function oversizedMessage(what: string, bytes: number, maxFrameBytes: number, details?: Record<string, unknown>): RpcError {
  return new RpcError(
    RpcCode.RESOURCE_EXHAUSTED,
    `${what} is ${bytes} bytes, over maxFrameBytes ${maxFrameBytes}, the largest message a peer accepts: send it in parts (a stream), or raise maxFrameBytes on both sides`,
    details === undefined ? {} : { details },
  );
}
