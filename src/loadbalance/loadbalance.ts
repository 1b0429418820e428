import type { ServiceInstance } from '../registry/registry.js';
import type { Invocation } from '../transport/transport.js';

/** A provider as a balancer sees it: its registry record plus this consumer's live view of it. */
export interface ProviderView {
  readonly instance: ServiceInstance;
  /** `host:port`. */
  readonly address: string;
  /** Calls this consumer has in flight to the provider right now. */
  readonly inFlight: number;
}

/**
 * Picks one provider for a call. `select` gets a non-empty list of candidates that are
 * already filtered (version, group, health) and returns one of them; it must be fast and
 * must not throw.
 */
export interface LoadBalancer {
  readonly name: string;
  select(providers: readonly ProviderView[], invocation: Invocation): ProviderView;
}

/** Tells a LoadBalancer instance from a spec. */
export function isLoadBalancer(value: unknown): value is LoadBalancer {
  return value !== null && typeof value === 'object' && typeof (value as LoadBalancer).select === 'function';
}
