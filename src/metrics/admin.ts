import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkInt, invalidOption, MAX_TIMER_MS } from '../common/validate.js';
import { listenFailure } from '../common/listen-failure.js';
import { paced, recent } from './admin-answers.js';
import { ADMIN_HEADERS, hostCheck, limitConnections, NOTHING_RUNS_CSP } from './admin-guard.js';
import { admissionSnapshot } from './admission-snapshot.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard.js';
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
  /**
   * The names the endpoint answers to in a request's `Host` header (`name` or `name:port`).
   * Bound to loopback, the loopback names (`localhost`, `127.0.0.1`, `[::1]`) are always
   * allowed and other names only when listed here (a request naming another site's domain is
   * a DNS-rebinding page and gets 421); bound elsewhere, every name unless this is given.
   */
  allowedHosts?: readonly string[];
  /** Connections open at once (64 by default); one past it is answered 503 at once and closed. */
  maxConnections?: number;
  /**
   * How long a client may take to send a request's headers (10 s by default), and to receive
   * an answer without reading a byte of it (3 × this): a slow or silent client is then closed.
   */
  slowClientMs?: number;
  /**
   * Bytes of answers held for clients that have not taken them yet, all connections together
   * (64 MiB by default). An answer that would pass it, while others are held, is refused with
   * 503 and `retry-after`; one answer alone is always sent, however large the fleet, and so
   * are answers of at most 4 KiB (health probes, totals).
   */
  maxUnsentBytes?: number;
}

/** Answers this small (health probes, errors, totals) are sent whatever maxUnsentBytes holds: maxConnections bounds them. */
const SMALL_ANSWER_BYTES = 4096;

/** Bytes of request headers the admin endpoint reads (its requests are GETs with a few headers). */
const MAX_HEADER_BYTES = 8 * 1024;

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
 * 404. Every answer carries the headers of admin-guard.ts; requests are held to the options'
 * host names, connections, header time and size and unsent bytes. Resolves once listening.
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
  const allowedHosts = options.allowedHosts;
  if (allowedHosts !== undefined && (!Array.isArray(allowedHosts) || !allowedHosts.every((name) => typeof name === 'string' && name !== ''))) {
    throw invalidOption('admin allowedHosts', allowedHosts, 'an array of host names (name or name:port)');
  }
  const hostAllowed = hostCheck(host, allowedHosts);
  const maxConnections = checkInt('admin maxConnections', options.maxConnections, 1, 100_000, 64);
  const slowClientMs = checkInt('admin slowClientMs', options.slowClientMs, 100, 600_000, 10_000);
  const maxUnsentBytes = checkInt('admin maxUnsentBytes', options.maxUnsentBytes, 1024, 2 ** 40, 64 * 1024 * 1024);
  // Answers written and not yet handed to the kernel: a client that never reads (a tab behind a
  // stalled proxy) leaves its answer, up to megabytes for a large fleet, in this process.
  let unsent = 0;
  const fleet = new FleetHistory(clients, metrics, checkInt('admin downRetentionMs', options.downRetentionMs, 1000, MAX_TIMER_MS, 600_000));
  const sampler = setInterval(() => {
    try {
      fleet.sample();
    } catch {
      // A watched client that throws while listing its providers: this sample is skipped (the
      // next /fleet answers 500), never an exception out of a timer, which would end the process.
    }
  }, FLEET_SAMPLE_MS).unref();
  fleet.sample();
  // A scrape of a large fleet costs a quarter of a second of this process's CPU (1,000
  // providers): a burst of scrapes shares one, and one just built is reused for as long as it
  // took to build, so scrapes take at most half of a core whatever their rate.
  const metricsText = paced(() => metrics.text());
  // What the dashboard polls is built at most once per 250 ms and shared: every open
  // tab polls these three, and /fleet walks every provider's counts (22 ms at 1,000 providers),
  // so ten tabs must cost what one does. No tab polls faster (dashboard-script.ts).
  const fleetJson = recent(async () => `${JSON.stringify(await fleet.snapshot())}\n`);
  const totalsJson = recent(async () => `${JSON.stringify(await metrics.consumerTotals())}\n`);
  const admissionJson = recent(async () => `${JSON.stringify({ admission: (await admissionSnapshot(metrics.registry)) ?? null })}\n`);

  const server: Server = createServer(
    { maxHeaderSize: MAX_HEADER_BYTES, headersTimeout: slowClientMs, requestTimeout: slowClientMs, connectionsCheckingInterval: Math.min(1000, slowClientMs) },
    (request, response) => {
      // Its connection was past maxConnections and has had its 503.
      if (refusedConnection(request.socket)) return void response.destroy();
      const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
      const reply = (status: number, type: string, body: string, csp = NOTHING_RUNS_CSP): void => {
        const bytes = Buffer.byteLength(body);
        if (bytes > SMALL_ANSWER_BYTES && unsent > 0 && unsent + bytes > maxUnsentBytes) {
          response.writeHead(503, { ...ADMIN_HEADERS, 'content-security-policy': NOTHING_RUNS_CSP, 'content-type': 'text/plain', 'retry-after': '1' });
          response.end(`the admin endpoint holds ${unsent} bytes of answers its clients have not read (maxUnsentBytes ${maxUnsentBytes}); retry later\n`);
          return;
        }
        unsent += bytes;
        let held = true;
        const release = (): void => {
          if (held) unsent -= bytes;
          held = false;
        };
        response.once('finish', release).once('close', release);
        response.writeHead(status, { ...ADMIN_HEADERS, 'content-security-policy': csp, 'content-type': type }).end(body);
      };
      const answer = (name: string, build: () => Promise<string>, type = 'application/json'): void => {
        build().then(
          (body) => reply(200, type, body),
          // The reason stays in this process: it can name files, hosts or internals of a plugin.
          () => reply(500, 'text/plain', `${name} failed: the admin endpoint could not build this answer\n`),
        );
      };
      if (!hostAllowed(request.headers.host)) {
        return reply(
          421,
          'text/plain',
          `host ${JSON.stringify(String(request.headers.host ?? '').slice(0, 100))} is not served here (allowed: the loopback names and the allowedHosts option)\n`,
        );
      }
      if (request.method !== 'GET' && request.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed: use GET\n');
      if (path === '/metrics') return answer('metrics', metricsText, metrics.registry.contentType);
      if (path === '/providers') {
        try {
          return reply(200, 'application/json', `${JSON.stringify({ providers: clients.flatMap((client) => client.providers()) })}\n`);
        } catch {
          return reply(500, 'text/plain', 'providers failed: the admin endpoint could not build this answer\n');
        }
      }
      if (path === '/fleet') return answer('fleet', fleetJson);
      if (path === '/totals') return answer('totals', totalsJson);
      if (path === '/admission') return answer('admission', admissionJson);
      if (path === '/dashboard' || path === '/') return reply(200, 'text/html; charset=utf-8', DASHBOARD_HTML, DASHBOARD_CSP);
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
      reply(
        404,
        'text/plain',
        `not found: ${path.slice(0, 100)} (served: /metrics, /health/live, /health/ready, /providers, /fleet, /totals, /admission, /dashboard)\n`,
      );
    },
  );
  const refusedConnection = limitConnections(server, maxConnections);
  // A client that stops reading an answer (a tab left behind a stalled proxy) holds its socket
  // and the unsent bytes; with no progress for this long, it is closed.
  server.setTimeout(3 * slowClientMs);
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
