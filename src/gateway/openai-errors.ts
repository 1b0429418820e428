import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { RpcCode, RpcError } from '../errors/errors.js';
import { CONTEXT_LENGTH_EXCEEDED, MAX_ENGINE_MESSAGE_CHARS, tokenCount } from '../inference/inference.js';
import { hideCredentials } from '../common/credentials.js';
import { wireMessage } from '../errors/wire-text.js';

/** An error as OpenAI's API sends it: `{ error: { message, type, param, code } }` with a status. */
export interface OpenAiError {
  readonly status: number;
  readonly body: { error: { message: string; type: string; param: string | null; code: string | null } };
  /** Seconds for a Retry-After header (429 and 503). */
  readonly retryAfterSeconds?: number;
}

/**
 * A refusal by the gateway itself (a bad field, an unknown model, no workers): its message is
 * the gateway's own words about the request, safe to send as is.
 */
export class BadRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly status = 400,
    readonly code: string | null = null,
    /** Seconds for a Retry-After header. */
    readonly retryAfterSeconds?: number,
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
 * What the HTTP client is told for a failure that came from behind the gateway. Those
 * messages are the workers' and engines' (addresses, engine URLs) and stay in the gateway's log
 * under the request id; the client gets these words and the id, and for a request the engine
 * refused as invalid, the engine's own words about it (see {@link engineWords}).
 */
const GENERIC: Record<number, string> = {
  400: 'a worker refused the request as invalid',
  404: 'a worker does not know what the request names',
  502: "a worker refused the gateway's credentials: the fleet behind the gateway is misconfigured",
  429: 'every worker is saturated; retry after the Retry-After delay',
  499: 'the request was cancelled',
  501: 'the workers do not implement this request',
  503: 'no worker could take the request; retry after the Retry-After delay',
  504: 'the generation did not finish in time',
};

/**
 * The OpenAI-shaped answer for anything a request handler threw: the gateway's own
 * {@link BadRequest}s with their words; a Fastify 4xx the gateway has no words for by its status (logged under the id); the shuttle call's
 * RpcErrors by code — INVALID_ARGUMENT 400, NOT_FOUND 404, UNAUTHENTICATED and PERMISSION_DENIED
 * 502 (a worker refused the gateway's own credentials: the client can do nothing about it), RESOURCE_EXHAUSTED 429 (a worker shed the call: every worker saturated;
 * Retry-After from the worker's hint, else `defaultRetryAfterSeconds`; the gateway's own queue
 * refusals come as {@link admissionFailure}'s BadRequests instead), UNAVAILABLE 503 (no worker reachable; Retry-After
 * too), DEADLINE_EXCEEDED 504, other 500 — with a generic message naming `requestId` (see
 * {@link GENERIC}); `internal` says the real error must be logged under that id.
 */
export function toOpenAiError(error: unknown, defaultRetryAfterSeconds: number, requestId: string): OpenAiError & { internal: boolean } {
  if (error instanceof BadRequest) {
    return {
      ...openAiError(error.status, error.message, error.param, error.code),
      internal: false,
      ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
    };
  }
  const fastifyStatus = (error as { statusCode?: number } | null)?.statusCode;
  // A Fastify rejection the gateway has no words for (the known ones come as BadRequests, see
  // http-refusals.ts): its status, but Fastify's text stays in the log.
  if (!(error instanceof RpcError) && typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500) {
    return {
      ...openAiError(fastifyStatus, `the request was refused: ${fastifyStatus} ${STATUS_CODES[fastifyStatus] ?? ''} (request id ${requestId})`, null, null),
      internal: true,
    };
  }
  const status = error instanceof RpcError ? (STATUS_OF[error.code] ?? 500) : 500;
  const words = status === 400 || status === 404 ? engineWords(error) : undefined;
  const message = words === undefined ? (GENERIC[status] ?? 'internal error') : `the engine refused the request: ${words}`;
  const answer = {
    ...openAiError(status, `${message} (request id ${requestId})`, null, status === 429 ? 'rate_limit_exceeded' : null),
    internal: true,
  };
  if (status !== 429 && status !== 503) return answer;
  const hintMs = error instanceof RpcError ? error.retryAfterMs : undefined;
  return { ...answer, retryAfterSeconds: Math.max(1, Math.ceil((hintMs ?? defaultRetryAfterSeconds * 1000) / 1000)) };
}

/**
 * The engine's own words about a request it refused as invalid (`details.engineMessage`, set by
 * the engine adapter: "temperature must be in [0, 2]", "The model `x` does not exist"), made safe
 * to send: a string of at most {@link MAX_ENGINE_MESSAGE_CHARS} characters, control characters as
 * spaces, credentials in URLs hidden. Engines write these words for API clients, and a client
 * needs them to know what to change. Undefined when the worker gave none.
 */
function engineWords(error: unknown): string | undefined {
  const words = error instanceof RpcError ? error.details?.['engineMessage'] : undefined;
  if (typeof words !== 'string' || words.trim() === '') return undefined;
  return hideCredentials(wireMessage(words.slice(0, MAX_ENGINE_MESSAGE_CHARS)));
}

/**
 * What the client is told when the gateway's own admission queue turns a request away: the
 * queue's reason in its words (they describe the gateway's queue, nothing behind it, so they are
 * safe to send) — RESOURCE_EXHAUSTED (the queue or the tenant's share of it is full, or the wait
 * would outlast the deadline) a 429 with the queue's Retry-After; DEADLINE_EXCEEDED (waited until
 * `maxWaitMs`) a 504. Anything else (the client went away) is returned unchanged.
 */
export function admissionFailure(error: unknown): unknown {
  if (!(error instanceof RpcError)) return error;
  if (error.code === RpcCode.RESOURCE_EXHAUSTED) {
    const seconds = Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000));
    return new BadRequest(
      `the gateway's admission queue turned the request away before any worker saw it: ${error.rawMessage}`,
      null,
      429,
      'rate_limit_exceeded',
      seconds,
    );
  }
  if (error.code === RpcCode.DEADLINE_EXCEEDED) return new BadRequest(`no worker slot came free in time: ${error.rawMessage}`, null, 504, 'queue_timeout');
  return error;
}

/**
 * A worker's refusal of a generation whose prompt and max_tokens do not fit in the model's
 * context (details.reason {@link CONTEXT_LENGTH_EXCEEDED}) as OpenAI says it: 400
 * `context_length_exceeded` on `param`, with the words "maximum context length" that clients
 * match on and the limit when the worker gave one. The worker's own message stays behind (it
 * names the engine's address); anything else is returned unchanged.
 */
export function contextLengthFailure(error: unknown, param: string): unknown {
  if (!(error instanceof RpcError) || error.code !== RpcCode.INVALID_ARGUMENT || error.details?.['reason'] !== CONTEXT_LENGTH_EXCEEDED) return error;
  const limit = tokenCount(error.details['maxContextTokens']);
  return new BadRequest(
    `the ${param} and the tokens asked for exceed the model's maximum context length${limit === undefined ? '' : ` of ${limit} tokens`}; shorten the ${param} or ask for fewer tokens (max_tokens)`,
    param,
    400,
    CONTEXT_LENGTH_EXCEEDED,
  );
}

/** The HTTP status of each code a worker call can fail with (others: 500). */
const STATUS_OF: Partial<Record<RpcCode, number>> = {
  [RpcCode.INVALID_ARGUMENT]: 400,
  [RpcCode.FAILED_PRECONDITION]: 400,
  [RpcCode.OUT_OF_RANGE]: 400,
  // The gateway's credentials to its fleet: a fault behind the gateway, not the client's.
  [RpcCode.UNAUTHENTICATED]: 502,
  [RpcCode.PERMISSION_DENIED]: 502,
  [RpcCode.NOT_FOUND]: 404,
  [RpcCode.RESOURCE_EXHAUSTED]: 429,
  [RpcCode.UNAVAILABLE]: 503,
  [RpcCode.DEADLINE_EXCEEDED]: 504,
  [RpcCode.CANCELLED]: 499,
  [RpcCode.UNIMPLEMENTED]: 501,
};

/**
 * The last SSE event of a stream that broke after `tokens` tokens had gone out (the status
 * line was sent long ago): what happened, in OpenAI's error shape.
 */
export function streamBroken(tokens: number, requestId: string): OpenAiError['body'] {
  return openAiError(
    500,
    `the stream broke after ${tokens} token${tokens === 1 ? '' : 's'}; the answer is incomplete (request id ${requestId})`,
    null,
    'stream_interrupted',
  ).body;
}

/**
 * The last SSE event of a stream the gateway ended because it was shutting down and its drain
 * time ran out, after `tokens` tokens: `reason` (the gateway's own words), in OpenAI's error shape.
 */
export function streamShutDown(tokens: number, requestId: string, reason: string): OpenAiError['body'] {
  return openAiError(
    503,
    `${reason}; the answer is incomplete after ${tokens} token${tokens === 1 ? '' : 's'} (request id ${requestId})`,
    null,
    GATEWAY_SHUTTING_DOWN,
  ).body;
}

/** The error code of every answer the gateway gives because it is shutting down. */
export const GATEWAY_SHUTTING_DOWN = 'gateway_shutting_down';

/** The header naming the request on every answer the gateway sends, errors included. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** A fresh request id: what the client quotes and the gateway's log is keyed by. */
export function newRequestId(): string {
  return randomUUID();
}

/** The headers of an error answer sent outside Fastify's reply (a broken stream's status, a raw socket answer). */
export function errorHeaders(answer: OpenAiError, requestId: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    [REQUEST_ID_HEADER]: requestId,
    ...(answer.retryAfterSeconds === undefined ? {} : { 'retry-after': String(answer.retryAfterSeconds) }),
  };
}

/** An OpenAI-shaped error: `type` follows from the status (`invalid_request_error` for a 4xx it has no name for, `server_error` for a 5xx). */
export function openAiError(status: number, message: string, param: string | null = null, code: string | null = null): OpenAiError {
  return { status, body: { error: { message, type: TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param, code } } };
}

/** OpenAI's words for a JSON value's type in its `invalid_type` messages ("an integer", "a string"). */
export function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'string') return 'a string';
  return 'an object';
}
