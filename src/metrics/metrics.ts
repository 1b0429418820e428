import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RouteEvent } from '../client/service-reference.js';
import type { RpcServer } from '../server/server.js';

/** What the provider gauges read from a server: its latest published load and its connections. */
export type WatchedServer = Pick<RpcServer, 'url' | 'lastLoad' | 'connections'>;

/** Latency buckets in seconds: 1 ms to 60 s, for calls from embeddings to long generations. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The Prometheus metrics of one client or server, in their own prom-client Registry (never the
 * library's global default registry, so two clients in one process never mix their numbers).
 * Filled by the `metrics` filter (calls, outcomes, latency, in flight, stream chunks, time to
 * first chunk) and by the client's routing decisions; served by the admin endpoint.
 */
export class ShuttleMetrics {
  readonly registry = new Registry();
  readonly calls = new Counter({ name: 'shuttle_calls_total', help: 'Calls by side, service, method and outcome code (a stream: of opening it).', labelNames: ['side', 'service', 'method', 'code'], registers: [this.registry] });
  readonly latency = new Histogram({ name: 'shuttle_call_seconds', help: 'Call latency (a stream: until it is open).', labelNames: ['side', 'service', 'method'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly inFlight = new Gauge({ name: 'shuttle_calls_in_flight', help: 'Calls in flight.', labelNames: ['side', 'service', 'method'], registers: [this.registry] });
  readonly chunks = new Counter({ name: 'shuttle_stream_chunks_total', help: 'Stream chunks received (consumer) or sent (provider).', labelNames: ['side', 'service', 'method'], registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'shuttle_stream_first_chunk_seconds', help: 'Time from call to first stream chunk.', labelNames: ['side', 'service', 'method'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly routes = new Counter({ name: 'shuttle_route_decisions_total', help: 'Load-balancing decisions by policy and branch (hit, spill, cold…).', labelNames: ['service', 'policy', 'branch'], registers: [this.registry] });
  readonly retries = new Counter({ name: 'shuttle_attempts_total', help: 'Attempts by attempt number (1 = first, 2+ = retries).', labelNames: ['service', 'attempt'], registers: [this.registry] });

  readonly #servers = new Set<WatchedServer>();
  /**
   * Provider-side gauges, read from the watched servers' latest load snapshot at scrape time
   * (so a scrape shows what consumers see on the load channel, not a second bookkeeping).
   */
  readonly providerGauges = (
    [
      ['shuttle_provider_running', 'Requests being served (GPU: sequences in the running batch).', (s) => s.lastLoad?.running],
      ['shuttle_provider_waiting', 'Requests queued behind them.', (s) => s.lastLoad?.waiting],
      ['shuttle_provider_kv_usage', 'KV-cache use, 0..1.', (s) => s.lastLoad?.kvUsage],
      ['shuttle_provider_tokens_per_second', 'Generated tokens per second, recent average.', (s) => s.lastLoad?.tokensPerSecond],
      ['shuttle_provider_draining', '1 while the provider drains.', (s) => (s.lastLoad === undefined ? undefined : Number(s.lastLoad.draining))],
      ['shuttle_provider_connections', 'Consumer connections open.', (s) => s.connections],
    ] as const satisfies ReadonlyArray<readonly [string, string, (server: WatchedServer) => number | undefined]>
  ).map(([name, help, read]) => {
    const servers = this.#servers;
    return new Gauge({
      name,
      help,
      labelNames: ['provider'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const server of servers) {
          const value = read(server);
          if (value !== undefined) this.set({ provider: server.url }, value);
        }
      },
    });
  });

  /** Adds a server's load and connections to the provider gauges (until {@link unwatchServer}). */
  watchServer(server: WatchedServer): void {
    this.#servers.add(server);
  }

  unwatchServer(server: WatchedServer): void {
    this.#servers.delete(server);
  }

  /** Records one routing decision (wire it to the client's `onRoute`). */
  route(event: RouteEvent): void {
    this.routes.inc({ service: event.service, policy: event.decision.policy, branch: event.decision.branch });
    this.retries.inc({ service: event.service, attempt: event.attempt === 1 ? '1' : '2+' });
  }

  /** The metrics in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
