import type { ServerResponse } from 'node:http';
import { Counter } from 'prom-client';
import type { ClientOptions } from '../client/client.js';
import type { ShuttleMetrics } from '../metrics/metrics.js';

const ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/health']);

/** Counts the gateway's HTTP answers; see {@link requestCounter}. */
export interface RequestCounter {
  /**
   * Counts `response` when it ends (a hijacked streaming answer counts when it ends). Called
   * once per answer: from the onRequest hook, or from Fastify's `frameworkErrors` for what its
   * router refuses, where no hook runs.
   */
  answered(response: ServerResponse, url: string): void;
  /** Counts an answer written straight to the socket: a request Node's HTTP parser refused. */
  refused(status: number): void;
}

/**
 * Counts the gateway's HTTP answers in `metrics` as `shuttle_gateway_requests_total{path,
 * status}`, every one of them: routed requests, what Fastify refuses before any hook runs, and
 * what Node's parser refuses (431, 408, 400; path `other`, as it was never read). Unknown paths
 * count as `other`, so a scanner cannot grow the label set.
 */
export function requestCounter(metrics: ShuttleMetrics): RequestCounter {
  const requests = new Counter({
    name: 'shuttle_gateway_requests_total',
    help: 'HTTP requests answered by the OpenAI gateway, by path and status.',
    labelNames: ['path', 'status'],
    registers: [metrics.registry],
  });
  return {
    answered(response, url) {
      const path = url.split('?')[0]!;
      response.once('close', () => requests.inc({ path: ROUTES.has(path) ? path : 'other', status: String(response.statusCode) }));
    },
    refused(status) {
      requests.inc({ path: 'other', status: String(status) });
    },
  };
}

/** Client options that also report calls, routes and attempts to `metrics`. */
export function withMetrics(options: ClientOptions, metrics: ShuttleMetrics | undefined): ClientOptions {
  if (metrics === undefined) return options;
  return {
    ...options,
    filters: [...(options.filters ?? []), { type: 'metrics', options: { metrics } }],
    onRoute: (event) => {
      metrics.route(event);
      options.onRoute?.(event);
    },
    onAttempt: (event) => {
      metrics.attempt(event);
      options.onAttempt?.(event);
    },
    onStreamBreak: (event) => {
      metrics.attempt(event);
      options.onStreamBreak?.(event);
    },
  };
}
