import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { codeConstant } from '../errors/errors.js';
import { ProviderSeries, type ProviderSeriesLimits } from './provider-series.js';
import { MethodLabels } from './method-labels.js';
import type { AttemptEvent, ProviderStatus, RouteEvent, WatchedClient, WatchedKvEvents, WatchedServer } from './reports.js';

/** Running totals of the consumer side, which the dashboard turns into rates between polls. */
export interface ConsumerTotals {
  readonly calls: number;
  readonly failed: number;
  readonly chunks: number;
  readonly firstChunks: number;
  readonly firstChunkSeconds: number;
  readonly latencyCount: number;
  readonly latencySeconds: number;
  /** Calls refused for load (RESOURCE_EXHAUSTED). */
  readonly shed: number;
  /** Attempts after a call's first (retries and failovers). */
  readonly retries: number;
  /** Streams that opened and then broke off. */
  readonly broken: number;
  /** Routing decisions by branch (hit, spill, cold, pick…). */
  readonly routes: Readonly<Record<string, number>>;
}

/** One provider's counts, as {@link ShuttleMetrics.providerTotals} gives them. */
export interface ProviderTotals {
  readonly attempts: number;
  readonly failed: number;
  readonly shed: number;
  readonly broken: number;
  readonly retries: number;
}

const BREAKER_VALUE: Record<ProviderStatus['breaker'], number> = { closed: 0, 'half-open': 1, open: 2 };

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
  readonly calls = new Counter({
    name: 'shuttle_calls_total',
    help: 'Calls by side, service, method and outcome code (a stream: of opening it).',
    labelNames: ['side', 'service', 'method', 'code'],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'shuttle_call_seconds',
    help: 'Call latency (a stream: until it is open).',
    labelNames: ['side', 'service', 'method'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'shuttle_calls_in_flight',
    help: 'Calls in flight.',
    labelNames: ['side', 'service', 'method'],
    registers: [this.registry],
  });
  readonly chunks = new Counter({
    name: 'shuttle_stream_chunks_total',
    help: 'Stream chunks received (consumer) or sent (provider).',
    labelNames: ['side', 'service', 'method'],
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: 'shuttle_stream_first_chunk_seconds',
    help: 'Time from call to first stream chunk.',
    labelNames: ['side', 'service', 'method'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly routes = new Counter({
    name: 'shuttle_route_decisions_total',
    help: 'Load-balancing decisions by policy and branch (hit, spill, cold…).',
    labelNames: ['service', 'policy', 'branch'],
    registers: [this.registry],
  });
  readonly providerCalls = new Counter({
    name: 'shuttle_consumer_provider_attempts_total',
    help: 'Attempts by provider and outcome code (a stream: of opening it).',
    labelNames: ['service', 'method', 'provider', 'code'],
    registers: [this.registry],
  });
  readonly providerLatency = new Histogram({
    name: 'shuttle_consumer_provider_attempt_seconds',
    help: 'Attempt latency by provider.',
    labelNames: ['service', 'provider'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'shuttle_attempts_total',
    help: 'Attempts by attempt number (1 = first, 2+ = retries).',
    labelNames: ['service', 'attempt'],
    registers: [this.registry],
  });
  readonly providerRetries = new Counter({
    name: 'shuttle_consumer_provider_retries_total',
    help: 'Attempts that were retries (attempt 2+), by the provider they went to.',
    labelNames: ['service', 'provider'],
    registers: [this.registry],
  });
  readonly streamBreaks = new Counter({
    name: 'shuttle_consumer_stream_breaks_total',
    help: 'Streams that opened and then broke off, by provider and code.',
    labelNames: ['service', 'method', 'provider', 'code'],
    registers: [this.registry],
  });

  readonly #servers = new Set<WatchedServer>();
  readonly #methodLabels = new MethodLabels();
  /** The `provider` labels of the attempt metrics above, removed when their provider leaves (provider-series.ts). */
  readonly #providerSeries: ProviderSeries;

  /** @param limits how many provider label values are held, and for how long after a provider leaves */
  constructor(limits?: ProviderSeriesLimits) {
    this.#providerSeries = new ProviderSeries(() => this.#listedProviders(), limits);
  }

  /**
   * The `method` label for a call of `service.method`: the name, or `other` once 1,000 distinct
   * pairs have a label of their own (a consumer can call any name; see method-labels.ts).
   */
  methodLabel(service: string, method: string): string {
    return this.#methodLabels.label(service, method);
  }

  /** Service and method pairs with a `method` label of their own (at most 1,000). */
  get methodLabels(): number {
    return this.#methodLabels.size;
  }

  /** Providers whose attempt series are held now (at most `limits.maxProviders`). */
  get providerLabels(): number {
    return this.#providerSeries.size;
  }
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
      [
        'shuttle_provider_slots',
        'Calls the provider runs at once before refusing (maxConcurrentCalls), when limited.',
        (s) => s.instances?.[0]?.maxConcurrentCalls,
      ],
    ] as const satisfies ReadonlyArray<readonly [string, string, (server: WatchedServer) => number | undefined]>
  ).map(([name, help, read]) =>
    scrapedGauge(this.registry, name, help, ['provider'], (set) => {
      for (const server of this.#servers) {
        const value = read(server);
        if (value !== undefined) set({ provider: server.url }, value);
      }
    }),
  );

  /** Read from the watched servers at scrape time, like the gauges above (a server keeps the running count). */
  readonly refusedConnections = (() => {
    const servers = this.#servers;
    return new Counter({
      name: 'shuttle_connections_refused_total',
      help: 'Consumer connections refused by the connection limits, by transport and limit (maxConnections, maxConnectionsPerAddress), or closed for a flood of frames that do no work (frameFlood).',
      labelNames: ['provider', 'transport', 'reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const server of servers)
          for (const entry of server.refusedConnections ?? [])
            this.inc({ provider: server.url, transport: entry.transport, reason: entry.reason }, entry.count);
      },
    });
  })();

  /** Server-wide byte budgets (partial frames, unsent answers, decoded requests): held now and their limits. */
  readonly budgetGauges = (
    [
      [
        'shuttle_provider_budget_used_bytes',
        'Bytes a server-wide budget holds now, by transport and budget (maxTotalBufferedBytes, maxTotalUnsentBytes, maxTotalDecodedBytes).',
        'used',
      ],
      ['shuttle_provider_budget_limit_bytes', 'The limit of a server-wide budget, by transport and budget.', 'limit'],
    ] as const
  ).map(([name, help, field]) => {
    const servers = this.#servers;
    return new Gauge({
      name,
      help,
      labelNames: ['provider', 'transport', 'budget'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const server of servers)
          for (const entry of server.budgets ?? []) this.set({ provider: server.url, transport: entry.transport, budget: entry.budget }, entry[field]);
      },
    });
  });

  readonly #kvEvents = new Set<WatchedKvEvents>();
  /** An engine worker's KV-event follower, read at scrape time: what it received, and what it holds. */
  readonly kvEventCounts = (() => {
    const sources = this.#kvEvents;
    return new Counter({
      name: 'shuttle_engine_kv_events_total',
      help: "The engine's KV events as the worker followed them, by kind: messages, events (applied), bad (refused), missed (sequence gaps), restarts, disconnects, tokenize_failures (prompts whose token ids the engine's /tokenize did not give).",
      labelNames: ['provider', 'kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const source of sources) {
          const stats = source.stats;
          for (const [kind, field] of KV_EVENT_KINDS) this.inc({ provider: source.url, kind }, stats[field] ?? 0);
        }
      },
    });
  })();

  readonly kvEventGauges = (
    [
      ['shuttle_engine_kv_blocks', "Engine KV-cache blocks the worker knows to be held, from the engine's events.", 'blocks'],
      ['shuttle_engine_kv_prompts', 'Recent prompts the worker maps from tokens to text for its cache summary.', 'prompts'],
    ] as const
  ).map(([name, help, field]) =>
    scrapedGauge(this.registry, name, help, ['provider'], (set) => {
      for (const source of this.#kvEvents) set({ provider: source.url }, source.stats[field] ?? 0);
    }),
  );

  /** Adds an engine worker's KV-event follower to the KV-event metrics. */
  watchKvEvents(source: WatchedKvEvents): void {
    this.#kvEvents.add(source);
  }

  readonly #clients = new Set<WatchedClient>();
  /**
   * Consumer-side gauges per provider, read from the watched clients at scrape time: breaker
   * state, ejection, this client's calls in flight.
   */
  readonly consumerGauges = (
    [
      ['shuttle_consumer_breaker_state', "A provider's circuit breaker: 0 closed, 1 half-open, 2 open.", (p) => BREAKER_VALUE[p.breaker]],
      ['shuttle_consumer_provider_ejected', '1 while a provider is ejected as an outlier.', (p) => Number(p.ejected)],
      ['shuttle_consumer_provider_in_flight', "This client's calls in flight to a provider.", (p) => p.inFlight],
    ] as const satisfies ReadonlyArray<readonly [string, string, (provider: ProviderStatus) => number]>
  ).map(([name, help, read]) => {
    const clients = this.#clients;
    return new Gauge({
      name,
      help,
      labelNames: ['service', 'provider'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const client of clients)
          for (const provider of client.providers()) this.set({ service: provider.service, provider: provider.address }, read(provider));
      },
    });
  });

  /** Adds a client's view of its providers to the consumer gauges (until {@link unwatchClient}). */
  watchClient(client: WatchedClient): void {
    this.#clients.add(client);
  }

  unwatchClient(client: WatchedClient): void {
    this.#clients.delete(client);
  }

  /** The consumer-side totals so far (all services and methods). */
  async consumerTotals(): Promise<ConsumerTotals> {
    const sum = (
      values: ReadonlyArray<{ labels: Record<string, string | number>; value: number; metricName?: string }>,
      keep: (labels: Record<string, string | number>, name?: string) => boolean,
    ): number =>
      values.reduce((total, entry) => (entry.labels['side'] === 'consumer' && keep(entry.labels, entry.metricName) ? total + entry.value : total), 0);
    const [calls, chunks, ttft, latency, retries, breaks, routes] = await Promise.all([
      this.calls.get(),
      this.chunks.get(),
      this.ttft.get(),
      this.latency.get(),
      this.retries.get(),
      this.streamBreaks.get(),
      this.routes.get(),
    ]);
    const byBranch: Record<string, number> = {};
    for (const { labels, value } of routes.values) byBranch[String(labels['branch'])] = (byBranch[String(labels['branch'])] ?? 0) + value;
    return {
      shed: sum(calls.values, (labels) => labels['code'] === 'RESOURCE_EXHAUSTED'),
      retries: retries.values.reduce((total, { labels, value }) => (labels['attempt'] === '2+' ? total + value : total), 0),
      broken: breaks.values.reduce((total, { value }) => total + value, 0),
      routes: byBranch,
      calls: sum(calls.values, () => true),
      failed: sum(calls.values, (labels) => labels['code'] !== 'OK'),
      chunks: sum(chunks.values, () => true),
      firstChunks: sum(ttft.values, (_labels, name) => name === 'shuttle_stream_first_chunk_seconds_count'),
      firstChunkSeconds: sum(ttft.values, (_labels, name) => name === 'shuttle_stream_first_chunk_seconds_sum'),
      latencyCount: sum(latency.values, (_labels, name) => name === 'shuttle_call_seconds_count'),
      latencySeconds: sum(latency.values, (_labels, name) => name === 'shuttle_call_seconds_sum'),
    };
  }

  /** Adds a server's load and connections to the provider gauges (until {@link unwatchServer}). */
  watchServer(server: WatchedServer): void {
    this.#servers.add(server);
  }

  unwatchServer(server: WatchedServer): void {
    this.#servers.delete(server);
  }

  /** Records how one attempt on one provider went (wire it to the client's `onAttempt`, and `onStreamBreak` for streams that broke after opening). */
  attempt(event: AttemptEvent): void {
    const code = codeConstant(event.code);
    const service = event.service;
    const method = this.#methodLabels.label(service, event.method);
    const series = this.#providerSeries;
    const provider = series.label(event.provider);
    if (event.midStream === true) {
      const labels = { service, method, provider, code };
      this.streamBreaks.inc(labels);
      series.track(provider, this.streamBreaks, `b\u0000${service}\u0000${method}\u0000${code}`, labels);
      return;
    }
    const labels = { service, method, provider, code };
    this.providerCalls.inc(labels);
    series.track(provider, this.providerCalls, `c\u0000${service}\u0000${method}\u0000${code}`, labels);
    const byService = { service, provider };
    this.providerLatency.observe(byService, event.seconds);
    series.track(provider, this.providerLatency, `l\u0000${service}`, byService);
    if (event.attempt > 1) {
      this.providerRetries.inc(byService);
      series.track(provider, this.providerRetries, `r\u0000${service}`, byService);
    }
  }

  /** The addresses the watched clients list now; undefined when no client is watched. */
  #listedProviders(): ReadonlySet<string> | undefined {
    if (this.#clients.size === 0) return undefined;
    const listed = new Set<string>();
    for (const client of this.#clients) for (const provider of client.providers()) listed.add(provider.address);
    return listed;
  }

  /**
   * Per provider (`host:port`): attempts, failed ones (a refusal for load, RESOURCE_EXHAUSTED,
   * counts as `shed`, not failed), streams that broke after opening, and retries sent to it.
   */
  async providerTotals(): Promise<Map<string, ProviderTotals>> {
    this.#providerSeries.sweep();
    const totals = new Map<string, ProviderTotals>();
    const entry = (provider: string): { -readonly [K in keyof ProviderTotals]: number } => {
      let found = totals.get(provider) as { -readonly [K in keyof ProviderTotals]: number } | undefined;
      if (found === undefined) totals.set(provider, (found = { attempts: 0, failed: 0, shed: 0, broken: 0, retries: 0 }));
      return found;
    };
    const [calls, breaks, retries] = await Promise.all([this.providerCalls.get(), this.streamBreaks.get(), this.providerRetries.get()]);
    for (const { labels, value } of calls.values) {
      const counts = entry(String(labels['provider']));
      counts.attempts += value;
      if (labels['code'] === 'RESOURCE_EXHAUSTED') counts.shed += value;
      else if (labels['code'] !== 'OK' && labels['code'] !== 'CANCELLED') counts.failed += value;
    }
    for (const { labels, value } of breaks.values) entry(String(labels['provider'])).broken += value;
    for (const { labels, value } of retries.values) entry(String(labels['provider'])).retries += value;
    return totals;
  }

  /** Records one routing decision (wire it to the client's `onRoute`). */
  route(event: RouteEvent): void {
    this.routes.inc({ service: event.service, policy: event.decision.policy, branch: event.decision.branch });
    this.retries.inc({ service: event.service, attempt: event.attempt === 1 ? '1' : '2+' });
  }

  /** The metrics in the Prometheus text format. */
  text(): Promise<string> {
    this.#providerSeries.sweep();
    return this.registry.metrics();
  }
}

/** The `kind` label of shuttle_engine_kv_events_total, and the KvEventsStats field it counts. */
const KV_EVENT_KINDS = [
  ['messages', 'messages'],
  ['events', 'events'],
  ['bad', 'bad'],
  ['missed', 'missed'],
  ['restarts', 'restarts'],
  ['disconnects', 'disconnects'],
  ['tokenize_failures', 'tokenizeFailures'],
] as const;

/** A gauge whose values are read at scrape time: `fill` sets them, after the last scrape's are cleared. */
function scrapedGauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  fill: (set: (labels: Record<string, string>, value: number) => void) => void,
): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      fill((labels, value) => this.set(labels, value));
    },
  });
}
