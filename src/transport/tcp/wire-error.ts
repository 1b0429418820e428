import { RpcCode, RpcError, isRpcCode } from '../../errors/errors.js';
import { MAX_WIRE_MESSAGE_CHARS } from '../../errors/wire-text.js';
import { MAX_ERROR_BODY_BYTES, readErrorBody } from '../error-body.js';
import { encodeFrame, type Frame, type FrameType } from '../frame.js';

/*
 * An error crosses the wire as a RESPONSE (or STREAM_END, or GOAWAY) whose status byte is the
 * code and whose body is UTF-8 JSON `{ "message", "details"?, "retryAfterMs"? }`, whatever the
 * call's serializer: a failed call may have failed precisely because its serializer could not
 * encode something. The stack never crosses.
 */

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
 * over {@link MAX_ERROR_BODY_BYTES}, or one that would decode past its limits ({@link readErrorBody}), is
 * not parsed: the error keeps its code and says why its message is missing.
 */
export function decodeWireError(frame: Frame): RpcError {
  const code = isRpcCode(frame.status) && frame.status !== RpcCode.OK ? frame.status : RpcCode.UNKNOWN;
  const body = readErrorBody(frame.body);
  if ('unread' in body) return new RpcError(code, `(${body.unread})`);
  return RpcError.fromWire({ ...body.fields, code });
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
