import { RpcCode, RpcError } from '../errors/errors.js';

/** An error as OpenAI's API sends it: `{ error: { message, type, param, code } }` with a status. */
export interface OpenAiError {
  readonly status: number;
  readonly body: { error: { message: string; type: string; param: string | null; code: string | null } };
  /** Seconds for a Retry-After header (429 and 503). */
  readonly retryAfterSeconds?: number;
}

/** A bad request found by the gateway itself: which field, what was wrong. */
export class BadRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly status = 400,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  499: 'cancelled',
  501: 'not_implemented_error',
  503: 'service_unavailable_error',
  504: 'timeout_error',
};

/**
 * The OpenAI-shaped answer for anything a request handler threw: the gateway's own
 * {@link BadRequest}s, and the shuttle call's RpcErrors by code — INVALID_ARGUMENT 400,
 * UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED 429 (every
 * worker saturated; Retry-After from the worker's hint, else `defaultRetryAfterSeconds`),
 * UNAVAILABLE 503 (no worker reachable; Retry-After too), DEADLINE_EXCEEDED 504, other 500.
 */
export function toOpenAiError(error: unknown, defaultRetryAfterSeconds: number): OpenAiError {
  if (error instanceof BadRequest) return shape(error.status, error.message, error.param, error.code);
  if (!(error instanceof RpcError)) {
    const status = (error as { statusCode?: number }).statusCode;
    // Fastify's own rejections (malformed JSON, body too large, wrong content type).
    if (typeof status === 'number' && status >= 400 && status < 500) return shape(status, (error as Error).message, null, null);
    return shape(500, `internal error: ${(error as Error)?.message ?? String(error)}`, null, null);
  }
  const retryAfter = Math.max(1, Math.ceil((error.retryAfterMs ?? defaultRetryAfterSeconds * 1000) / 1000));
  switch (error.code) {
    case RpcCode.INVALID_ARGUMENT:
    case RpcCode.FAILED_PRECONDITION:
    case RpcCode.OUT_OF_RANGE:
      return shape(400, error.rawMessage, null, null);
    case RpcCode.UNAUTHENTICATED:
      return shape(401, error.rawMessage, null, null);
    case RpcCode.PERMISSION_DENIED:
      return shape(403, error.rawMessage, null, null);
    case RpcCode.NOT_FOUND:
      return shape(404, error.rawMessage, null, null);
    case RpcCode.RESOURCE_EXHAUSTED:
      return { ...shape(429, `every worker is saturated: ${error.rawMessage}`, null, 'rate_limit_exceeded'), retryAfterSeconds: retryAfter };
    case RpcCode.UNAVAILABLE:
      return { ...shape(503, `no worker could take the request: ${error.rawMessage}`, null, null), retryAfterSeconds: retryAfter };
    case RpcCode.DEADLINE_EXCEEDED:
      return shape(504, error.rawMessage, null, null);
    case RpcCode.CANCELLED:
      return shape(499, error.rawMessage, null, null);
    case RpcCode.UNIMPLEMENTED:
      return shape(501, error.rawMessage, null, null);
    default:
      return shape(500, error.rawMessage, null, null);
  }
}

function shape(status: number, message: string, param: string | null, code: string | null): OpenAiError {
  return { status, body: { error: { message, type: TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param, code } } };
}
