import type { FastifyInstance } from 'fastify';
import { Counter } from 'prom-client';
import type { ClientOptions } from '../client/client.js';
import type { ShuttleMetrics } from '../metrics/metrics.js';

const ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/health']);

/**
 * Counts the gateway's HTTP answers in `metrics` as `shuttle_gateway_requests_total{path,
 * status}` (a hijacked streaming answer counts when it ends; unknown paths count as `other`,
 * so a scanner cannot grow the label set).
 */
export function countRequests(app: FastifyInstance, metrics: ShuttleMetrics): void {
  const requests = new Counter({
    name: 'shuttle_gateway_requests_total',
    help: 'HTTP requests answered by the OpenAI gateway, by path and status.',
    labelNames: ['path', 'status'],
    registers: [metrics.registry],
  });
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    reply.raw.once('close', () => requests.inc({ path: ROUTES.has(path) ? path : 'other', status: String(reply.raw.statusCode) }));
  });
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
