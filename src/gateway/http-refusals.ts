import http from 'node:http';
import type { Socket } from 'node:net';
import { BadRequest, errorHeaders, newRequestId, openAiError } from './openai-errors.js';

/*
 * The refusals that happen before a request reaches one of the gateway's routes: Fastify's
 * (a URL that does not decode, a body its parsers refuse, no route) and Node's HTTP parser's
 * (headers too large, not HTTP at all, too slow). All are said in OpenAI's error shape with an
 * x-request-id, like every other answer, and in the gateway's words: Fastify's own texts name
 * its internals (`FST_ERR_…`, "content-type is set to …").
 */

/** The routes the gateway serves, for the 404 and 405 messages. */
const SERVED = '/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models and /v1/models/{model}';

/** The one media type request bodies may have. */
export const BODY_MEDIA_TYPE = 'application/json';

/**
 * Fastify's rejection of a request (its `code`) as the gateway's {@link BadRequest}, naming what
 * was wrong and what is allowed; anything else is returned unchanged.
 */
export function fastifyRefusal(error: unknown, request: { url: string; headers: http.IncomingHttpHeaders }, maxBodyBytes: number): unknown {
  switch ((error as { code?: string } | null)?.code) {
    case 'FST_ERR_BAD_URL':
      return new BadRequest(`the URL ${cut(request.url)} is not valid: it has a % escape that does not decode to UTF-8`, null, 400, 'invalid_url');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BadRequest(
        `content-type ${clip(request.headers['content-type'] ?? '')} is not supported; send ${BODY_MEDIA_TYPE}`,
        null,
        415,
        'unsupported_media_type',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BadRequest(`the request body is larger than ${maxBodyBytes} bytes (the gateway's maxBodyBytes)`, null, 413);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BadRequest(`the request body's length is not its content-length (${clip(request.headers['content-length'] ?? '')})`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequest('the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // Fastify keeps no detail of the parse failure; secure-json-parse also refuses prototype keys.
      return new BadRequest('the request body is not valid JSON, or has a __proto__ or constructor.prototype key');
    default:
      return error;
  }
}

/**
 * The answer to a request no route takes: 405 when the path is served with other methods
 * (`allowed`, for the Allow header), else 404.
 */
export function noRoute(method: string, url: string, allowed: readonly string[]): BadRequest {
  if (allowed.length > 0) {
    return new BadRequest(`${cut(url)} does not take ${cut(method)}; it takes ${allowed.join(', ')}`, null, 405, 'method_not_allowed');
  }
  return new BadRequest(`no route ${cut(method)} ${cut(url)}; this gateway serves ${SERVED}`, null, 404, 'unknown_url');
}

/**
 * Answers a connection whose request Node's HTTP parser refused before Fastify saw it (the
 * server's `clientError`): headers past Node's limit 431, headers or request too slow 408
 * (http.headersTimeoutMs, http.requestTimeoutMs), anything that is not HTTP/1.1 400 with the
 * parser's reason; then the connection is closed, as the parser cannot go on. Nothing is sent
 * on a socket that is gone or whose current answer has begun (bytes written now would corrupt
 * it). Returns the status sent, undefined when nothing was.
 */
export function answerClientError(error: Error & { code?: string; reason?: unknown }, socket: Socket): number | undefined {
  // An answer in progress on this socket (Node's own check, on its private field).
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || socket.destroyed || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return undefined;
  }
  const answer = clientErrorAnswer(error);
  const body = JSON.stringify(answer.body);
  const headers = { ...errorHeaders(answer, newRequestId()), 'content-length': String(Buffer.byteLength(body)), connection: 'close' };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  // end, not destroy: the answer must leave before the connection closes. A peer that never
  // reads it is cut by the server's connection timeout.
  socket.end(`HTTP/1.1 ${answer.status} ${http.STATUS_CODES[answer.status]}\r\n${head}\r\n${body}`, () => socket.destroy());
  return answer.status;
}

function clientErrorAnswer(error: Error & { code?: string; reason?: unknown }): ReturnType<typeof openAiError> {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return openAiError(
      408,
      'the request did not arrive in time (its headers within http.headersTimeoutMs, all of it within http.requestTimeoutMs)',
      null,
      'request_timeout',
    );
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return openAiError(431, `the request line and headers are larger than the ${http.maxHeaderSize} bytes the gateway reads`, null, 'headers_too_large');
  }
  // llhttp's reasons are fixed texts ("Invalid method encountered"), never the client's bytes.
  const reason = error.code?.startsWith('HPE_') === true && typeof error.reason === 'string' ? `: ${error.reason.slice(0, 100)}` : '';
  return openAiError(400, `the request is not valid HTTP/1.1${reason}`, null, 'invalid_http');
}

/** `text` (a method or URL, which Node's parser has checked for control characters) cut to 100 characters: what the client sent comes back bounded. */
function cut(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/** `text` as a JSON string, cut to 100 characters. */
function clip(text: string): string {
  return JSON.stringify(cut(text));
}
