import type { ServiceInstance } from '../registry/registry.js';
import type { Invocation } from '../transport/transport.js';

/**
 * One call handed to a cluster strategy: the candidate providers and the two moves a strategy
 * can make — pick a provider (through the load balancer) and send the call to it.
 */
export interface ClusterCall {
  readonly invocation: Invocation;
  /** Providers currently eligible for this call; never empty. */
  readonly providers: readonly ServiceInstance[];
  /** Whether the method is declared idempotent by its provider (false when unknown). */
  readonly idempotent: boolean;
  /**
   * A server-streaming call: `send` resolves with the stream once the request is sent. A
   * strategy may retry a stream only while `send` rejects; once it resolved, chunks may have
   * reached the caller, and a stream is never retried after its first chunk.
   */
  readonly stream: boolean;
  /** Picks a provider with the load balancer, skipping `excluded`; undefined if none is left. */
  select(excluded?: ReadonlySet<ServiceInstance>): ServiceInstance | undefined;
  /** Sends the call to `provider` and resolves with its result (a stream: the open stream). */
  send(provider: ServiceInstance): Promise<unknown>;
}

/**
 * How a call uses the providers (Dubbo's Cluster): one attempt, retries elsewhere, hedging,
 * broadcast… Contract: resolve with one result or reject with an RpcError; never send a
 * non-idempotent call twice unless it provably never reached a handler.
 */
export interface ClusterStrategy {
  readonly name: string;
  invoke(call: ClusterCall): Promise<unknown>;
}

/** Tells a ClusterStrategy instance from a spec. */
export function isClusterStrategy(value: unknown): value is ClusterStrategy {
  return value !== null && typeof value === 'object' && typeof (value as ClusterStrategy).invoke === 'function' && typeof (value as ClusterStrategy).name === 'string';
}
