import { RpcError } from '../errors/errors.js';
import type { DecodeLimits } from '../serializer/decode-limits.js';
import { checkJson } from '../serializer/json-guard.js';

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

/**
 * Reads the JSON of an error a peer sent (a tcp error frame's body, a gRPC `shuttle-error-bin`
 * trailer): its fields when it is a JSON object within the limits above, else `unread` saying
 * why. Untrusted input, priced before it is parsed, whatever transport carried it.
 */
export function readErrorBody(bytes: Buffer): { readonly fields: Record<string, unknown> } | { readonly unread: string } {
  const size = bytes.length;
  if (size > MAX_ERROR_BODY_BYTES) return { unread: `error body of ${size} bytes not read: an error may carry at most ${MAX_ERROR_BODY_BYTES}` };
  try {
    const text = bytes.toString('utf8');
    checkJson(text, size, ERROR_BODY_LIMITS);
    const parsed: unknown = JSON.parse(text);
    return { fields: parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {} };
  } catch (error) {
    return { unread: `unreadable error body of ${size} bytes${error instanceof RpcError ? `: ${error.rawMessage}` : ''}` };
  }
}
