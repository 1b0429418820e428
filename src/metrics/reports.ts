import type { RpcCode } from '../errors/errors.js';
import type { RouteDecision } from '../loadbalance/loadbalance.js';
import type { LoadSnapshot, ServiceInstance } from '../registry/instance.js';
import type { BudgetUse, ConnectionState, RefusedConnections } from '../transport/transport.js';

/*
 * What clients and servers report about themselves, in the shapes the metrics read. They are
 * declared here, below client and server, so that the metrics filter, a built-in extension
 * every client and server can load, depends on neither: a client's `providers()` returns
 * ProviderStatus, its `onAttempt` and `onRoute` hooks receive AttemptEvent and RouteEvent, and
 * an RpcServer is a WatchedServer as it is.
 */

/** One provider of one service as a client sees it (what `RpcClient.providers()` lists). */
export interface ProviderStatus {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  /** `host:port` this client calls (the endpoint of its transport). */
  readonly address: string;
  readonly protocol: string;
  readonly weight: number;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly load: LoadSnapshot | undefined;
  /** Calls from this client in flight to the provider. */
  readonly inFlight: number;
  /** Recent average latency of this client's calls to it, in ms. */
  readonly averageLatencyMs: number | undefined;
  readonly connection: ConnectionState | 'none';
  /** `closed` also when breakers are turned off. */
  readonly breaker: 'closed' | 'open' | 'half-open';
  readonly ejected: boolean;
  /** When an ejection ends, wall-clock epoch ms (for people: the monotonic deadline converted at the time of the listing). */
  readonly ejectedUntil: number | undefined;
}

/** How one attempt on one provider went, as reported to the client's `onAttempt` hook. */
export interface AttemptEvent {
  readonly service: string;
  readonly method: string;
  /** `host:port` of the provider the attempt went to. */
  readonly provider: string;
  /** 1 for a call's first attempt, 2 for its first retry, … */
  readonly attempt: number;
  /** The outcome (of opening, for a stream). */
  readonly code: RpcCode;
  readonly seconds: number;
  /**
   * True on a second report for a stream whose opening was reported OK and that then broke
   * off with `code` (a provider that died mid-answer); `seconds` is then its whole life.
   */
  readonly midStream?: boolean;
}

/** A routing decision, as reported to the client's `onRoute` hook. */
export interface RouteEvent {
  readonly service: string;
  readonly method: string;
  /** 1 for a call's first attempt, 2 for its first retry, … */
  readonly attempt: number;
  readonly decision: RouteDecision;
}

/** What the provider gauges read from a server: its latest published load, connections and refusals. */
export interface WatchedServer {
  /** `shuttle://host:port` of the server, the `provider` label. */
  readonly url: string;
  readonly lastLoad: LoadSnapshot | undefined;
  readonly connections: number;
  readonly instances?: readonly ServiceInstance[];
  readonly refusedConnections?: readonly RefusedConnections[];
  /** Server-wide byte budgets and what they hold now (see `RpcServer.budgets`). */
  readonly budgets?: readonly (BudgetUse & { readonly transport: string })[];
}

/**
 * What the KV-event metrics read from an engine worker that follows its engine's KV events
 * (`EngineWorker.kvCache`): the `provider` label and the follower's counts.
 */
export interface WatchedKvEvents {
  readonly url: string;
  /** `KvEventsStats`: counts by name (`messages`, `events`, `bad`, …, `blocks`, `prompts`). */
  readonly stats: Readonly<Record<string, number>>;
}

/** What the consumer gauges read from a client: its view of its providers. */
export interface WatchedClient {
  providers(): readonly ProviderStatus[];
}
