import type http from 'node:http';
import type { FastifyHttpOptions } from 'fastify';
import { checkInt, checkKnownKeys, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';

/**
 * How long the gateway's HTTP clients may take, and how long their connections may stay: the
 * `http` option of startGateway. Without these a client sending its body a byte every 2 s, or
 * half a header, held a socket (and a parser) forever.
 */
export interface GatewayHttpLimits {
  /** The request headers must arrive whole within this long of the connection (or of the previous request); 10 s by default. */
  headersTimeoutMs?: number;
  /**
   * The whole request, headers and body, must arrive within this long; 60 s by default (an
   * 8 MiB body at 1 Mbit/s). The answer, a stream included, is not bound by it.
   */
  requestTimeoutMs?: number;
  /**
   * A socket on which nothing moves this long is closed, while a request runs too; by default
   * the gateway's `timeoutMs` plus a minute, so a generation waiting for its first token is
   * never cut by it.
   */
  connectionTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this long; 72 s by default (past the 60 s of common load balancers). */
  keepAliveTimeoutMs?: number;
  /** A keep-alive connection is closed after this many requests; 0 (the default) for no limit. */
  maxRequestsPerSocket?: number;
  /** Connections open at once; past it new ones are closed as they arrive. 10,000 by default. */
  maxConnections?: number;
  /**
   * Bytes of request bodies still arriving, all requests together; a body that would pass it
   * is answered 503 with Retry-After. 256 MiB by default: without it 600 clients each sending
   * all but the last byte of an 8 MiB body held 4.8 GB.
   */
  maxBufferedBodyBytes?: number;
}

const KEYS = optionKeys<GatewayHttpLimits>()([
  'headersTimeoutMs',
  'requestTimeoutMs',
  'connectionTimeoutMs',
  'keepAliveTimeoutMs',
  'maxRequestsPerSocket',
  'maxConnections',
  'maxBufferedBodyBytes',
]);

/** The limits the gateway applies itself, beside Fastify's server options. */
export interface GatewayConnectionLimits {
  readonly maxConnections: number;
  readonly maxBufferedBodyBytes: number;
}

/** Checks the `http` keys the gateway applies itself. */
export function gatewayConnectionLimits(option: unknown): GatewayConnectionLimits {
  const given = (option ?? {}) as Record<string, unknown>;
  return {
    maxConnections: checkInt('gateway http.maxConnections', given['maxConnections'], 1, 10_000_000, 10_000),
    maxBufferedBodyBytes: checkInt('gateway http.maxBufferedBodyBytes', given['maxBufferedBodyBytes'], 1024, 2 ** 40, 256 * 1024 * 1024),
  };
}

/**
 * How often Node checks its open requests against the header and request timeouts; those
 * bounds are enforced within this much (Node's own default is 30 s).
 */
const CHECK_INTERVAL_MS = 1000;

/** Checks `http` (naming the bad key) and turns it into Fastify's server options. */
export function httpServerOptions(option: unknown, timeoutMs: number): FastifyHttpOptions<http.Server> {
  const http = option ?? {};
  if (http === null || typeof http !== 'object' || Array.isArray(http)) throw invalidOption('gateway http', http, `an object with ${KEYS.join(', ')}`);
  checkKnownKeys('gateway http', http, KEYS);
  const given = http as Record<string, unknown>;
  const limit = (key: string, fallback: number, min = 1): number => checkInt(`gateway http.${key}`, given[key], min, MAX_TIMER_MS, fallback);
  const requestTimeout = limit('requestTimeoutMs', 60_000);
  return {
    requestTimeout,
    connectionTimeout: limit('connectionTimeoutMs', Math.min(timeoutMs + 60_000, MAX_TIMER_MS)),
    keepAliveTimeout: limit('keepAliveTimeoutMs', 72_000),
    maxRequestsPerSocket: checkInt('gateway http.maxRequestsPerSocket', given['maxRequestsPerSocket'], 0, 1_000_000_000, 0),
    // Node wants the header bound no longer than the whole-request bound.
    http: { headersTimeout: Math.min(limit('headersTimeoutMs', 10_000), requestTimeout), connectionsCheckingInterval: CHECK_INTERVAL_MS },
  };
}
