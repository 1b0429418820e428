import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { RpcCode, RpcError } from '../errors/errors.js';
import { CONTEXT_LENGTH_EXCEEDED, MAX_ENGINE_MESSAGE_CHARS } from '../inference/inference.js';
import { AnswerBudget } from './answer-budget.js';

/**
 * Idle keep-alive connections to the engine are closed after this long: under the 5 s that
 * uvicorn (vLLM, SGLang) keeps an idle connection, so a request never goes out on a connection
 * the engine is closing at that moment.
 */
const IDLE_SOCKET_MS = 4_000;

/**
 * An engine that sends nothing for this long (no headers, no chunk) has its request closed —
 * the same limit undici's `fetch` applied to headers and body.
 */
const SILENT_ENGINE_MS = 300_000;

/** The most a JSON answer (embeddings, the model list, an error) may take; beyond, an error. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Requests to the engine's HTTP API, and its failures as RpcErrors with the code a shuttle
 * consumer acts on: 400 → INVALID_ARGUMENT, 404 → NOT_FOUND, 429 → RESOURCE_EXHAUSTED (with the
 * engine's Retry-After), 401, 403, 503 and an unreachable engine → UNAVAILABLE (a worker whose
 * engine refuses its credentials is misconfigured: its caller did nothing wrong), any other →
 * INTERNAL. An unreachable engine and a 401, 403, 429 or 503 answer are marked never sent (see
 * {@link refusedUnrun}), so failover may go elsewhere even for a generation. A refusal of the
 * request itself carries the engine's words in `details.engineMessage` ({@link clientFacingWords}).
 *
 * Requests go through `node:http` (or `node:https`) with a keep-alive agent of its own, not the
 * global `fetch`: on loopback `fetch` takes 1.8–2.1 ms to a response's headers where `node:http`
 * takes 0.6–0.7 ms, and the engine request sits on every generation's time to first token.
 */
export interface Upstream {
  /**
   * The engine's OpenAI API base, e.g. `http://127.0.0.1:8000/v1`, without a trailing slash and
   * without credentials: it is what errors and logs quote.
   */
  readonly baseUrl: string;
  /** The `Authorization` header of every request: `Bearer` and the API key, else `Basic` and the URL's credentials. */
  readonly authorization: string | undefined;
  /** Keeps connections to the engine open between requests. */
  readonly agent: http.Agent;
  /** The worker's bytes of answers being read, shared by its upstreams; every body read here is charged to it. */
  readonly budget: AnswerBudget;
}

/**
 * An {@link Upstream} for the engine at `baseUrl`, charging `budget`; `close()` its agent when
 * done. Credentials in the URL (`http://user:password@host/v1`) are taken out of it and sent
 * as a `Basic` header (unless `apiKey` is given), so no message that quotes the URL shows them.
 */
export function createUpstream(baseUrl: string, apiKey: string | undefined, budget = new AnswerBudget()): Upstream {
  const url = new URL(baseUrl);
  const secure = url.protocol === 'https:';
  // No cap on sockets: the worker's maxConcurrentCalls bounds the requests in flight.
  const options = { keepAlive: true, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
  const credentials = url.username === '' && url.password === '' ? undefined : `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  const authorization =
    apiKey !== undefined ? `Bearer ${apiKey}` : credentials === undefined ? undefined : `Basic ${Buffer.from(credentials).toString('base64')}`;
  const shown = credentials === undefined ? baseUrl : `${url.protocol}//${url.host}${url.pathname}${url.search}`.replace(/\/+$/, '');
  return { baseUrl: shown, authorization, agent: secure ? new https.Agent(options) : new http.Agent(options), budget };
}

/** Closes the upstream's idle connections (requests in flight keep theirs until they end). */
export function closeUpstream(upstream: Upstream): void {
  upstream.agent.destroy();
}

/**
 * POSTs JSON to `baseUrl + path`; resolves with the response, its status OK, once its headers
 * arrive. The caller reads the body (a Node stream) and must read it to the end or destroy it.
 */
export function postJson(upstream: Upstream, path: string, body: unknown, signal: AbortSignal): Promise<IncomingMessage> {
  return send(upstream, path, 'POST', JSON.stringify(body), signal);
}

/** GETs `baseUrl + path` as JSON. */
export async function getJson(upstream: Upstream, path: string, signal: AbortSignal): Promise<unknown> {
  const response = await send(upstream, path, 'GET', undefined, signal);
  return readJson(response, `GET ${upstream.baseUrl}${path}`, upstream.budget);
}

/**
 * Reads a response body as JSON, at most `maxBytes` ({@link MAX_JSON_BYTES}); INTERNAL naming
 * `what` otherwise. Its bytes are charged to `budget` as they arrive and given back once parsed
 * or failed; an answer that does not fit fails RESOURCE_EXHAUSTED. Either way the body is closed.
 */
export async function readJson(response: IncomingMessage, what: string, budget: AnswerBudget, maxBytes = MAX_JSON_BYTES): Promise<unknown> {
  let held = 0;
  try {
    const text = await readText(response, maxBytes, what, (bytes, total) => {
      budget.take(bytes, total - bytes, what);
      held += bytes;
    });
    try {
      return JSON.parse(text);
    } catch {
      throw new RpcError(RpcCode.INTERNAL, `engine answered ${what} with a body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
    }
  } finally {
    budget.release(held);
  }
}

async function send(upstream: Upstream, path: string, method: string, body: string | undefined, signal: AbortSignal): Promise<IncomingMessage> {
  const url = `${upstream.baseUrl}${path}`;
  const headers: Record<string, string | number> = { accept: 'application/json, text/event-stream' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
  }
  if (upstream.authorization !== undefined) headers.authorization = upstream.authorization;
  let response: IncomingMessage;
  try {
    response = await request(upstream, { url, method, headers, body, signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason ?? error;
    const { code, message } = error as NodeJS.ErrnoException;
    // Only a request that never left is safe to send to another engine: one the engine read
    // whole before it reset or went silent may have crashed it, and a prompt that crashes
    // engines must not take down one engine per attempt.
    const written = (error as { requestWritten?: boolean }).requestWritten === true;
    throw new RpcError(RpcCode.UNAVAILABLE, `engine ${method} ${url} failed${written ? ' after the request was sent' : ''}: ${code ?? message}`, {
      cause: error,
      details: written ? {} : { neverSent: true },
    });
  }
  const status = response.statusCode ?? 0;
  if (status < 200 || status > 299) throw await engineError(response, `${method} ${url}`, upstream.budget);
  return response;
}

/** One request to the engine, as `request` sends it. */
interface Outgoing {
  readonly url: string;
  readonly method: string;
  readonly headers: Record<string, string | number>;
  readonly body: string | undefined;
  readonly signal: AbortSignal;
}

/**
 * One HTTP request; resolves with the response at its headers. A keep-alive connection the
 * engine closed just as the request went out on it (ECONNRESET, EPIPE before any answer) is
 * retried once on a new connection: the engine never saw that request. The other idle
 * connections are closed first: an engine that closes one has often closed them all (it
 * restarted, or a proxy in front of it ended connections that went idle together), and a retry
 * on the next of them would meet the same reset.
 */
async function request(upstream: Upstream, outgoing: Outgoing): Promise<IncomingMessage> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestOnce(upstream, outgoing);
    } catch (error) {
      const reused = (error as { reusedSocket?: boolean }).reusedSocket === true;
      const code = (error as NodeJS.ErrnoException).code;
      if (attempt > 0 || !reused || outgoing.signal.aborted || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw error;
      // The agent skips destroyed sockets when it next looks for an idle one.
      for (const sockets of Object.values(upstream.agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    }
  }
}

function requestOnce(upstream: Upstream, { url, method, headers, body, signal }: Outgoing): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = upstream.agent instanceof https.Agent ? https : http;
    const sent = client.request(url, { method, headers, agent: upstream.agent, signal, timeout: SILENT_ENGINE_MS }, resolve);
    // 'finish': the whole request was handed to the socket, so the engine may have read it.
    let written = false;
    sent.on('finish', () => (written = true));
    sent.on('error', (error) => {
      if (sent.reusedSocket) (error as { reusedSocket?: boolean }).reusedSocket = true;
      (error as { requestWritten?: boolean }).requestWritten = written;
      reject(error);
    });
    // Raised on the request while it waits for headers and on the response while it streams.
    sent.on('timeout', () => sent.destroy(new Error(`the engine sent nothing for ${SILENT_ENGINE_MS / 1000} s`)));
    sent.end(body);
  });
}

/** A response body as text, at most `maxBytes`, each chunk passed to `charge` first. */
function readText(response: IncomingMessage, maxBytes: number, what: string, charge: (bytes: number, total: number) => void): Promise<string> {
  return readCapped(response, maxBytes, () => new RpcError(RpcCode.INTERNAL, `engine answered ${what} with a body over ${maxBytes} bytes`), charge);
}

/**
 * A body (a Node stream or a fetch body) as UTF-8 text, at most `maxBytes`; past it, the error
 * `tooLarge` makes is thrown. Each chunk is first passed to `charge` (its length and the total
 * so far), which may throw too. A throw leaves the loop, and that closes the body.
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
  tooLarge: () => Error,
  charge?: (bytes: number, total: number) => void,
): Promise<string> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > maxBytes) throw tooLarge();
    charge?.(chunk.length, bytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The most of an error answer's body read for its message. */
const MAX_ERROR_BYTES = 64 * 1024;

/** The RpcError for a non-2xx engine answer, with the engine's own message when it gave one. */
async function engineError(response: IncomingMessage, what: string, budget: AnswerBudget): Promise<RpcError> {
  const status = response.statusCode ?? 0;
  let held = 0;
  const text = await readText(response, MAX_ERROR_BYTES, what, (bytes, total) => {
    budget.take(bytes, total - bytes, what);
    held += bytes;
  })
    .catch(() => '')
    .finally(() => budget.release(held));
  let message = text.slice(0, 500);
  /** Whether the body is an error object in the engines' JSON, not a proxy's page. */
  let engineSaid = false;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const found = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message ?? parsed.detail);
    if (typeof found === 'string') {
      message = found;
      engineSaid = true;
    }
  } catch {
    // not JSON: keep the text
  }
  const retryAfterMs = retryAfterHeaderMs(response.headers['retry-after'], response.headers.date);
  return new RpcError(codeOfStatus(status), `engine answered ${status} to ${what}: ${message}`, {
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    details: {
      httpStatus: status,
      ...(refusedUnrun(status, engineSaid) ? { neverSent: true } : {}),
      ...(status === 400 || status === 413 || status === 422 ? contextLengthDetails(message) : {}),
      ...(engineSaid ? clientFacingWords(status, message) : {}),
    },
  });
}

/** The statuses by which an engine says the request itself is at fault. */
const CLIENT_FAULTS = new Set([400, 404, 413, 422]);

/**
 * The engine's own words about a request it refused as the client's fault (400, 404, 413, 422),
 * as `details.engineMessage`: "temperature must be in [0, 2]", "The model `x` does not exist".
 * Engines write these for the clients of their OpenAI API (vLLM's and SGLang's servers send them
 * as they are), and without them a client cannot tell what to change. They go separately from
 * the error's message, which names the engine's address. Only words the engine gave in its JSON
 * error object (`message` is then those words), at most {@link MAX_ENGINE_MESSAGE_CHARS}.
 */
export function clientFacingWords(status: number, message: string): { engineMessage?: string } {
  return CLIENT_FAULTS.has(status) ? { engineMessage: message.slice(0, MAX_ENGINE_MESSAGE_CHARS) } : {};
}

/**
 * The details of a refusal whose words say the prompt and max_tokens do not fit in the model's
 * context, in vLLM's ("This model's maximum context length is 4096 tokens. However, you
 * requested …"), SGLang's ("… longer than the model's context length (4096 tokens)") or OpenAI's
 * terms; nothing for any other refusal.
 */
export function contextLengthDetails(message: string): { reason?: string; maxContextTokens?: number } {
  if (!/context length|context window/i.test(message)) return {};
  const limit = /context (?:length|window)[^\d.]{0,24}?(\d{1,9})\b/i.exec(message)?.[1];
  return { reason: CONTEXT_LENGTH_EXCEEDED, ...(limit === undefined ? {} : { maxContextTokens: Number(limit) }) };
}

/**
 * Whether an answer `status` says the engine turned the request away without running it, so
 * that another engine may be asked even for a call that is not idempotent: 429; 401 and 403, the
 * engine refusing the worker's credentials, which it checks before anything else; and a 503 in the
 * engine's own words (`engineSaid`: a JSON error object), which SGLang answers when its waiting
 * queue is full (`--max-queued-requests`) and engines answer while they start or sleep. A 503
 * without them may be a proxy's in front of the engine (Envoy answers 503 "upstream connect
 * error or disconnect/reset before headers" when the engine dropped a request it had read), and
 * a 500 may be the engine's own crash: a prompt that crashes engines must not take down one
 * engine per attempt.
 */
export function refusedUnrun(status: number, engineSaid: boolean): boolean {
  return status === 429 || status === 401 || status === 403 || (status === 503 && engineSaid);
}

/**
 * A Retry-After header in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), bounded to
 * {@link MAX_RETRY_AFTER_SECONDS} (a Retry-After of 31 years from a broken engine is not advice
 * anyone should follow); undefined when absent, malformed or not in the future. An HTTP-date is
 * the engine's clock: it is measured from the answer's own `Date` header (`dateHeader`, the
 * same clock) when that is valid, so an engine whose clock is an hour off ours still means
 * "in 10 s", and from this host's clock only when the answer has no date.
 */
export function retryAfterHeaderMs(header: string | undefined, dateHeader?: string): number | undefined {
  if (header === undefined || header.length > 64) return undefined;
  const text = header.trim();
  const seconds = /^\d+$/.test(text) ? Number(text) : (Date.parse(text) - engineNow(dateHeader)) / 1000;
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  return Math.ceil(Math.min(seconds, MAX_RETRY_AFTER_SECONDS) * 1000);
}

/** The engine's "now" as its `Date` header states it, else this host's. */
function engineNow(dateHeader: string | undefined): number {
  const stated = dateHeader === undefined || dateHeader.length > 64 ? Number.NaN : Date.parse(dateHeader);
  return Number.isFinite(stated) ? stated : Date.now();
}

/** The RpcCode of an engine's HTTP status (an answer's, or the `code` of an error event). */
export function codeOfStatus(status: number): RpcCode {
  switch (status) {
    case 400:
    case 422:
      return RpcCode.INVALID_ARGUMENT;
    case 401:
    case 403:
      // The engine refused the worker's credentials: the worker's configuration is at fault,
      // not its caller's, and another worker may be configured right (see refusedUnrun).
      return RpcCode.UNAVAILABLE;
    case 404:
      return RpcCode.NOT_FOUND;
    case 408:
    case 504:
      return RpcCode.DEADLINE_EXCEEDED;
    case 429:
      return RpcCode.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return RpcCode.UNAVAILABLE;
    default:
      return RpcCode.INTERNAL;
  }
}

/** The longest Retry-After taken from an engine (10 minutes). */
const MAX_RETRY_AFTER_SECONDS = 600;
