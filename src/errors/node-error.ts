import { RpcCode } from './codes.js';

/**
 * Node socket and DNS error codes and the status each one means to a caller. Everything here
 * says "the provider could not be reached or the connection broke", which gRPC reports as
 * UNAVAILABLE; a timeout on connect is also UNAVAILABLE because no work was started.
 */
const SYSTEM_CODES: ReadonlyMap<string, RpcCode> = new Map([
  ['ECONNREFUSED', RpcCode.UNAVAILABLE],
  ['ECONNRESET', RpcCode.UNAVAILABLE],
  ['ECONNABORTED', RpcCode.UNAVAILABLE],
  ['EPIPE', RpcCode.UNAVAILABLE],
  ['ETIMEDOUT', RpcCode.UNAVAILABLE],
  ['EHOSTUNREACH', RpcCode.UNAVAILABLE],
  ['EHOSTDOWN', RpcCode.UNAVAILABLE],
  ['ENETUNREACH', RpcCode.UNAVAILABLE],
  ['ENETDOWN', RpcCode.UNAVAILABLE],
  ['ENOTFOUND', RpcCode.UNAVAILABLE],
  ['EAI_AGAIN', RpcCode.UNAVAILABLE],
  ['EADDRNOTAVAIL', RpcCode.UNAVAILABLE],
  ['ERR_SOCKET_CLOSED', RpcCode.UNAVAILABLE],
  ['ERR_STREAM_DESTROYED', RpcCode.UNAVAILABLE],
  ['ERR_STREAM_WRITE_AFTER_END', RpcCode.UNAVAILABLE],
]);

/**
 * Finds a Node system error code anywhere on the `cause` chain of `error` and returns the
 * status it maps to, or undefined when the chain holds none. Walking the chain matters because
 * libraries wrap socket errors (fetch's `TypeError: fetch failed` has the ECONNREFUSED as cause).
 */
export function codeFromNodeError(error: unknown): RpcCode | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== null && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      const mapped = SYSTEM_CODES.get(code);
      if (mapped !== undefined) return mapped;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
