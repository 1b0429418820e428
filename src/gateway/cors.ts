import type { FastifyInstance } from 'fastify';
import { invalidOption } from '../common/validate.js';
import { BadRequest } from './openai-errors.js';

/*
 * Cross-origin calls from browser apps (CORS), off unless origins are named. A gateway on
 * loopback with no API key would otherwise serve any web page the user happens to open; with
 * no CORS headers a browser refuses to send such a page's JSON requests (their preflight gets
 * no permission) and to show it an answer.
 */

/** The most origins `cors.origins` may name. */
const MAX_ORIGINS = 256;

/** An origin as browsers send it: scheme, host, optional port, nothing after. */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/\s?#]+$/i;

/** The request headers a preflight may ask for: a comma-separated list of header names. */
const HEADER_LIST = /^[\w-]+(?:\s*,\s*[\w-]+)*$/;

/** The longest Access-Control-Request-Headers echoed (the openai client asks for about a dozen). */
const MAX_HEADER_LIST_CHARS = 2048;

/** Asked for when a preflight names none, or a list that is not one: what the gateway reads. */
const DEFAULT_ALLOWED_HEADERS = 'authorization, content-type, x-priority, x-tenant-id';

/** The answer headers a page may read: the request id to quote, when to retry, which worker served. */
const EXPOSED_HEADERS = 'x-request-id, retry-after, x-shuttle-worker';

/** Options of the gateway's CORS. */
export interface GatewayCors {
  /**
   * The origins (`https://app.example.com`, `http://localhost:5173`) whose pages may call the
   * gateway, or `['*']` for any page. An `Authorization` header is a request header like any
   * other to CORS: with `*`, any page the user opens can use a key it knows, never one it does not.
   */
  origins: readonly string[];
}

/** The allowed origins of `cors` (undefined when CORS is off); a TypeError names a bad one. */
export function corsOrigins(cors: GatewayCors | undefined): ReadonlySet<string> | undefined {
  if (cors === undefined) return undefined;
  const origins = (cors as { origins?: unknown } | null)?.origins;
  if (!Array.isArray(origins) || origins.length === 0 || origins.length > MAX_ORIGINS) {
    throw invalidOption('gateway cors.origins', origins, `a non-empty array of at most ${MAX_ORIGINS} origins`);
  }
  for (const origin of origins) {
    if (origin !== '*' && (typeof origin !== 'string' || !ORIGIN.test(origin) || origin.length > 256)) {
      throw invalidOption('gateway cors.origins entry', origin, '"*" or an origin such as "https://app.example.com" (scheme, host and port, no path)');
    }
  }
  return new Set(origins as string[]);
}

/**
 * Answers CORS preflights and marks answers to allowed origins. A preflight (OPTIONS with
 * Access-Control-Request-Method) from an allowed origin is answered 204 with the methods and
 * the headers it asked for, before any API key is checked (a browser sends no credentials on
 * one); from another origin 403 `origin_not_allowed`. Every other answer to an allowed origin,
 * streams and errors included, carries Access-Control-Allow-Origin and the headers a page may
 * read. Added before the API-key hook.
 */
export function addCors(app: FastifyInstance, origins: ReadonlySet<string>): void {
  const any = origins.has('*');
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin !== 'string') return;
    const allowed = any || origins.has(origin);
    // Set on the raw response: Node merges these with the headers of whoever writes the head,
    // Fastify's reply or a stream that writes its own.
    const raw = reply.raw;
    if (allowed) {
      raw.setHeader('access-control-allow-origin', any ? '*' : origin);
      if (!any) raw.setHeader('vary', 'origin');
    }
    const method = request.headers['access-control-request-method'];
    if (request.method !== 'OPTIONS' || method === undefined) {
      if (allowed) raw.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
      return;
    }
    if (!allowed) {
      throw new BadRequest(
        `the origin ${JSON.stringify(origin.slice(0, 256))} may not call this gateway from a browser (its cors.origins)`,
        null,
        403,
        'origin_not_allowed',
      );
    }
    const asked = request.headers['access-control-request-headers'];
    const headers = typeof asked === 'string' && asked.length <= MAX_HEADER_LIST_CHARS && HEADER_LIST.test(asked) ? asked : DEFAULT_ALLOWED_HEADERS;
    raw.setHeader('access-control-allow-methods', 'GET, POST');
    raw.setHeader('access-control-allow-headers', headers);
    raw.setHeader('access-control-max-age', '600');
    return reply.code(204).send();
  });
}
