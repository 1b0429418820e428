import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkInt, invalidOption, MAX_TIMER_MS } from '../common/validate.js';
import { listenFailure } from '../common/listen-failure.js';
import { admissionSnapshot } from './admission-snapshot.js';
import { DASHBOARD_HTML } from './dashboard.js';
import { FleetHistory } from './fleet.js';
import { ShuttleMetrics } from './metrics.js';
import type { WatchedClient } from './reports.js';

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  /** The metrics served at `/metrics`. */
  metrics: ShuttleMetrics;
  /** Loopback by default: the admin endpoint is for operators and scrapers, not the internet. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /**
   * `/health/ready` answers 503 unless this returns true (a throw counts as not ready); for a
   * provider: `() => server.lastLoad?.draining !== true`.
   */
  ready?: () => boolean;
  /**
   * Clients whose view of their providers is served at `/providers` (JSON) and drawn by
   * `/dashboard`; they are also added to the metrics' consumer gauges (breaker state,
   * ejection, in flight per provider).
   */
  clients?: readonly WatchedClient[];
  /**
   * How long a provider that left or died stays listed as down on `/fleet` and the dashboard;
   * 10 minutes by default.
   */
  downRetentionMs?: number;
}

/** How often the clients' providers are sampled for the fleet history (joins, deaths, breaker changes). */
const FLEET_SAMPLE_MS = 250;

/** A running admin endpoint. */
export interface AdminServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts the admin HTTP endpoint: `/metrics` (Prometheus text format), `/health/live` (200 while
 * the process serves HTTP at all), `/health/ready` (200, or 503 while `ready()` is false),
 * `/providers` (the clients' provider directory as JSON), `/fleet` (the providers with their
 * error, shed, retry counts, those that left or died kept as down, and the events; see
 * fleet.ts), `/totals` (the consumer's running totals as JSON), `/admission` (the admission
 * queue by priority, tenant and refusal reason, `{"admission": null}` when this process runs
 * none; see admission-snapshot.ts) and `/dashboard` (a live page drawing them). Anything else is
 * 404. Resolves once listening.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  if (!(options.metrics instanceof ShuttleMetrics)) throw invalidOption('admin metrics', options.metrics, 'a ShuttleMetrics');
  if (options.ready !== undefined && typeof options.ready !== 'function') throw invalidOption('admin ready', options.ready, 'a function () => boolean');
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption('admin host', host, 'a host name or IP address');
  const port = checkInt('admin port', options.port, 0, 65_535, 0);
  const { metrics, ready } = options;
  const clients = options.clients ?? [];
  if (!Array.isArray(clients) || !clients.every((client) => typeof (client as WatchedClient)?.providers === 'function')) {
    throw invalidOption('admin clients', clients, 'an array of clients (createClient results)');
  }
  for (const client of clients) metrics.watchClient(client);
  const fleet = new FleetHistory(clients, metrics, checkInt('admin downRetentionMs', options.downRetentionMs, 1000, MAX_TIMER_MS, 600_000));
  const sampler = setInterval(() => fleet.sample(), FLEET_SAMPLE_MS).unref();
  fleet.sample();

  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?', 1)[0];
    const reply = (status: number, type: string, body: string): void => {
      response.writeHead(status, { 'content-type': type }).end(body);
    };
    if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed: use GET\n');
    if (path === '/metrics') {
      metrics.text().then(
        (text) => reply(200, metrics.registry.contentType, text),
        (error: unknown) => reply(500, 'text/plain', `metrics failed: ${String(error)}\n`),
      );
      return;
    }
    if (path === '/providers') {
      try {
        return reply(200, 'application/json', `${JSON.stringify({ providers: clients.flatMap((client) => client.providers()) })}\n`);
      } catch (error) {
        return reply(500, 'text/plain', `providers failed: ${String(error)}\n`);
      }
    }
    if (path === '/fleet') {
      fleet.snapshot().then(
        (snapshot) => reply(200, 'application/json', `${JSON.stringify(snapshot)}\n`),
        (error: unknown) => reply(500, 'text/plain', `fleet failed: ${String(error)}\n`),
      );
      return;
    }
    if (path === '/totals') {
      metrics.consumerTotals().then(
        (totals) => reply(200, 'application/json', `${JSON.stringify(totals)}\n`),
        (error: unknown) => reply(500, 'text/plain', `totals failed: ${String(error)}\n`),
      );
      return;
    }
    if (path === '/admission') {
      admissionSnapshot(metrics.registry).then(
        (snapshot) => reply(200, 'application/json', `${JSON.stringify({ admission: snapshot ?? null })}\n`),
        (error: unknown) => reply(500, 'text/plain', `admission failed: ${String(error)}\n`),
      );
      return;
    }
    if (path === '/dashboard' || path === '/') return reply(200, 'text/html; charset=utf-8', DASHBOARD_HTML);
    if (path === '/health/live') return reply(200, 'application/json', '{"status":"live"}\n');
    if (path === '/health/ready') {
      let isReady: boolean;
      try {
        isReady = ready === undefined || ready() === true;
      } catch {
        // A readiness check that throws means "not ready", never a crashed process.
        isReady = false;
      }
      return reply(isReady ? 200 : 503, 'application/json', `{"status":"${isReady ? 'ready' : 'not ready'}"}\n`);
    }
    reply(404, 'text/plain', `not found: ${path} (served: /metrics, /health/live, /health/ready, /providers, /fleet, /totals, /admission, /dashboard)\n`);
  });
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error): void => {
      clearInterval(sampler);
      reject(listenFailure(error, 'the admin server (/metrics, /health)', host, port));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sampler);
        for (const client of clients) metrics.unwatchClient(client);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
