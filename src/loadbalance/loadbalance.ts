import type { LoadSnapshot, ServiceInstance } from '../registry/registry.js';
import type { Invocation } from '../call/invocation.js';

/**
 * This consumer's own live view of one provider: what it has in flight there right now, and
 * what it sent since the provider's last load snapshot arrived (a snapshot is always a little
 * stale; these counts cover the gap, so a burst does not all land on the worker that looked
 * idle 200 ms ago). Kept by the client; balancers only read it.
 */
export interface ProviderStats {
  /** Calls in flight from this consumer. */
  readonly inFlight: number;
  /** Estimated prompt tokens of those calls. */
  readonly inFlightTokens: number;
  /**
   * Failed answers from the provider lately, each counted as a call that holds it for as long
   * as a successful call there takes, fading after that (a fraction, 0 when none): a provider
   * that fails at once frees its place at once and would otherwise look the idlest of all to a
   * balancer counting calls in flight. Undefined from stats that do not keep it.
   */
  readonly failing?: number;
  /**
   * Estimated prompt tokens of the calls in flight that have had no answer yet (no first chunk
   * of a stream, no response): prompts the provider is still computing or has queued, which a
   * new call may wait behind. Undefined from stats that do not keep it.
   */
  readonly prefillTokens?: number;
  /** Calls this consumer started since the provider's current load snapshot arrived. */
  readonly startedSinceLoad: number;
  /** Estimated prompt tokens of those calls. */
  readonly tokensSinceLoad: number;
  /**
   * The provider's load snapshot piggybacked on its latest answer to this consumer, with
   * `receivedAt` set on arrival; undefined when none came (the registry's is on the instance).
   */
  readonly load?: LoadSnapshot | undefined;
  /**
   * Average latency of this consumer's recent calls (about the last 10 s), ms; undefined
   * before any. `now` is on the clock the latencies were recorded with (wall time by default).
   */
  averageLatencyMs(now?: number): number | undefined;
  /**
   * The same for the calls of one method of one service alone; undefined before any. Absent
   * from stats that do not keep it per method (a balancer then falls back on
   * {@link averageLatencyMs}).
   */
  methodLatencyMs?(service: string, method: string, now?: number): number | undefined;
}

/** A provider as a balancer sees it: its registry record plus this consumer's live view of it. */
export interface ProviderView {
  readonly instance: ServiceInstance;
  /** `host:port`. */
  readonly address: string;
  readonly stats: ProviderStats;
}

/** Which branch of its policy a balancer took, for metrics and logs. */
export type RouteBranch = 'only' | 'pick' | 'hit' | 'spill' | 'cold' | 'fallback';

/** A balancer's answer: the provider, and why. */
export interface RouteDecision {
  readonly provider: ProviderView;
  /** The balancer's name. */
  readonly policy: string;
  /**
   * `pick` for policies without branches; prefix-affinity: `hit` (best cached prefix),
   * `spill` (that provider was too busy), `cold` (no cached prefix anywhere), `fallback` (no
   * prompt to route on); consistent-hash: `hit` (the key's node) or `spill` (bounded load);
   * `only` when a single provider was eligible.
   */
  readonly branch: RouteBranch;
  /** Numbers behind the choice (score, matched blocks, …), for logs. */
  readonly detail?: Readonly<Record<string, number | string>>;
  /**
   * The prompt tokens this call will make the provider prefill — its prompt less the prefix
   * the balancer expects cached there — when the balancer knows; the client counts these as
   * this call's tokens in flight (`ProviderStats.inFlightTokens`), else the whole prompt.
   */
  readonly uncachedTokens?: number;
}

/**
 * Picks one provider for a call. `select` gets a non-empty list of candidates that are
 * already filtered (version, group, draining, excluded by the cluster strategy) and returns
 * one of them with the branch it took; it must be fast, synchronous and must not throw.
 * Balancers may keep state (round-robin counters, prefix indexes); one instance serves one
 * client.
 */
export interface LoadBalancer {
  readonly name: string;
  select(providers: readonly ProviderView[], invocation: Invocation): RouteDecision;
  /**
   * Told how a call it routed went, for balancers that learn (optional): called once per
   * attempt that got an answer, after the call ended. Must not throw.
   */
  observe?(outcome: CallOutcome): void;
}

/** How one routed call went, for {@link LoadBalancer.observe}. */
export interface CallOutcome {
  /** The invocation `select` was given. */
  readonly invocation: Invocation;
  /** The provider's `host:port`. */
  readonly address: string;
  /** From sending to the first answer (a stream's first chunk, a unary call's response), ms. */
  readonly firstAnswerMs: number;
  /** From sending to the end of the call, ms. */
  readonly totalMs: number;
  /**
   * The provider answered with an error (not the consumer's own deadline or cancel, not a
   * connection that never carried the call): the answer came, but it was worth nothing.
   */
  readonly failed?: boolean;
}

/** Tells a LoadBalancer instance from a spec. */
export function isLoadBalancer(value: unknown): value is LoadBalancer {
  return value !== null && typeof value === 'object' && typeof (value as LoadBalancer).select === 'function';
}
