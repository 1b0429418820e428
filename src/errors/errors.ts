import { RpcCode, codeName, isRetryableCode, isRpcCode } from './codes.js';
import { codeFromNodeError } from './node-error.js';
import { wireMessage, wireRetryAfterMs } from './wire-text.js';

export { RpcCode, codeConstant, codeName, isRetryableCode, isRpcCode } from './codes.js';
export { codeFromNodeError } from './node-error.js';

/** JSON-safe extra information attached to an error; it crosses the wire as is. */
export type ErrorDetails = Readonly<Record<string, unknown>>;

/** Options of the {@link RpcError} constructor. */
export interface RpcErrorOptions {
  /** Extra, JSON-safe information for the caller (which key was bad, which limit applies…). */
  details?: ErrorDetails;
  /** The underlying error; kept locally, never sent over the wire. */
  cause?: unknown;
  /** A provider's hint for when to try again, for RESOURCE_EXHAUSTED and UNAVAILABLE answers. */
  retryAfterMs?: number;
  /** Overrides the code-based default of {@link RpcError.retryable}. */
  retryable?: boolean;
}

/** The plain-data form in which an error crosses the wire (no stack, no cause). */
export interface WireError {
  code: RpcCode;
  message: string;
  details?: ErrorDetails;
  retryAfterMs?: number;
}

/**
 * The one error type of shuttle-rpc. Its `message` is prefixed with the code name
 * (`[unavailable] connect ECONNREFUSED 127.0.0.1:1`); `rawMessage` is the text without it.
 * Anything thrown anywhere is normalised with {@link RpcError.from}.
 */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  readonly code: RpcCode;
  readonly rawMessage: string;
  readonly details: ErrorDetails | undefined;
  readonly retryAfterMs: number | undefined;
  /**
   * Whether another attempt can help. It says nothing about whether a retry is safe: the
   * cluster layer also requires the method to be idempotent, or the request to have provably
   * never reached a handler.
   */
  readonly retryable: boolean;

  constructor(code: RpcCode, message: string, options: RpcErrorOptions = {}) {
    super(`[${codeName(code)}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rawMessage = message;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
    this.retryable = options.retryable ?? isRetryableCode(code);
  }

  /**
   * Normalises anything thrown into an RpcError: an RpcError is returned as is, a Node socket
   * error (anywhere on its cause chain) gets its mapped code, an AbortError becomes CANCELLED,
   * and everything else becomes `fallback` (UNKNOWN by default) with the original as `cause`.
   */
  static from(error: unknown, fallback: RpcCode = RpcCode.UNKNOWN): RpcError {
    // Anything can be thrown, including a Proxy or an object whose getters or toString throw:
    // reading it must not throw in turn (that would escape as an unhandled rejection).
    try {
      if (error instanceof RpcError) return error;
      const message = thrownMessage(error);
      const nodeCode = codeFromNodeError(error);
      if (nodeCode !== undefined) return new RpcError(nodeCode, message, { cause: error });
      if (error instanceof Error && error.name === 'AbortError') {
        return new RpcError(RpcCode.CANCELLED, message, { cause: error });
      }
      return new RpcError(fallback, message, { cause: error });
    } catch {
      return new RpcError(fallback, thrownMessage(error));
    }
  }

  /**
   * Rebuilds an error received from the wire; malformed input becomes an INTERNAL error. The
   * message loses its control characters and is cut at 4,096 characters; a retry hint that is not
   * a number from 0 to 10 minutes is dropped (see wire-text.ts).
   */
  static fromWire(value: unknown): RpcError {
    if (value === null || typeof value !== 'object') {
      return new RpcError(RpcCode.INTERNAL, `malformed error from peer: ${typeof value}`);
    }
    const wire = value as Partial<Record<keyof WireError, unknown>>;
    const code = isRpcCode(wire.code) && wire.code !== RpcCode.OK ? wire.code : RpcCode.UNKNOWN;
    // The peer's text and hint are bounded here (wire-text.ts): every transport rebuilds through this.
    const message = typeof wire.message === 'string' ? wireMessage(wire.message) : 'no message';
    const details = isPlainRecord(wire.details) ? wire.details : undefined;
    const retryAfterMs = wireRetryAfterMs(wire.retryAfterMs);
    return new RpcError(code, message, { details, retryAfterMs });
  }

  /** The wire form: code, message without prefix, details and retry hint; never the stack. */
  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.rawMessage };
    if (this.details !== undefined) wire.details = this.details;
    if (this.retryAfterMs !== undefined) wire.retryAfterMs = this.retryAfterMs;
    return wire;
  }
}

/**
 * The message of a thrown value, for logs and error messages; never throws. A value whose
 * `message` getter or `toString` throws (or a Proxy that refuses to be looked at) is described
 * by its type instead.
 */
export function thrownMessage(error: unknown): string {
  try {
    if (error instanceof Error) {
      const message: unknown = error.message;
      return typeof message === 'string' ? message : String(message);
    }
    return String(error);
  } catch {
    let kind: string = typeof error;
    try {
      if (error instanceof Error) kind = 'Error';
    } catch {
      // A Proxy whose prototype cannot be read: its typeof is all there is.
    }
    return `(a thrown ${kind} that cannot be shown as text)`;
  }
}

function isPlainRecord(value: unknown): value is ErrorDetails {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
