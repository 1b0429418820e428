import { RpcCode, RpcError } from '../errors/errors.js';

/**
 * Requests to the engine's HTTP API, and its failures as RpcErrors with the code a shuttle
 * consumer acts on: 400 → INVALID_ARGUMENT, 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED,
 * 404 → NOT_FOUND, 429 → RESOURCE_EXHAUSTED (with the engine's Retry-After), 503 and an
 * unreachable engine → UNAVAILABLE (an unreachable one is marked never sent, so failover may
 * go elsewhere even for a generation), any other → INTERNAL.
 */
export interface Upstream {
  /** The engine's OpenAI API base, e.g. `http://127.0.0.1:8000/v1`, without a trailing slash. */
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set. */
  readonly apiKey: string | undefined;
}

/** POSTs JSON to `baseUrl + path`; resolves with the response once its status is OK. */
export async function postJson(upstream: Upstream, path: string, body: unknown, signal: AbortSignal): Promise<Response> {
  return send(upstream, path, { method: 'POST', body: JSON.stringify(body), signal });
}

/** GETs `baseUrl + path` as JSON. */
export async function getJson(upstream: Upstream, path: string, signal: AbortSignal): Promise<unknown> {
  const response = await send(upstream, path, { method: 'GET', signal });
  return response.json();
}

async function send(upstream: Upstream, path: string, init: { method: string; body?: string; signal: AbortSignal }): Promise<Response> {
  const url = `${upstream.baseUrl}${path}`;
  const headers: Record<string, string> = { accept: 'application/json, text/event-stream' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (upstream.apiKey !== undefined) headers.authorization = `Bearer ${upstream.apiKey}`;
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers });
  } catch (error) {
    if (init.signal.aborted) throw init.signal.reason ?? error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new RpcError(RpcCode.UNAVAILABLE, `engine ${init.method} ${url} failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`, {
      cause: error,
      details: { neverSent: true },
    });
  }
  if (!response.ok) throw await engineError(response, `${init.method} ${url}`);
  return response;
}

/** The RpcError for a non-2xx engine answer, with the engine's own message when it gave one. */
async function engineError(response: Response, what: string): Promise<RpcError> {
  const text = await response.text().catch(() => '');
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const found = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message ?? parsed.detail);
    if (typeof found === 'string') message = found;
  } catch {
    // not JSON: keep the text
  }
  const retryAfter = Number(response.headers.get('retry-after'));
  const options = Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {};
  return new RpcError(codeOfStatus(response.status), `engine answered ${response.status} to ${what}: ${message}`, {
    ...options,
    details: { httpStatus: response.status },
  });
}

function codeOfStatus(status: number): RpcCode {
  switch (status) {
    case 400:
    case 422:
      return RpcCode.INVALID_ARGUMENT;
    case 401:
      return RpcCode.UNAUTHENTICATED;
    case 403:
      return RpcCode.PERMISSION_DENIED;
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
