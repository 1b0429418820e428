/*
 * The shape of one call as every layer of the consumer path sees it (filters, cluster, load
 * balancer, transport), and the caller as a provider sees it. These are types only, kept below
 * all of those folders so that none of them has to import another to name a call.
 */

import { createContextValues, type ContextValues } from './context-values.js';

/** Call metadata: string keys to string values (deadline, trace context, token, routing hints). */
export type Metadata = Record<string, string>;

/** Which end of a call a filter runs on. */
export type FilterSide = 'consumer' | 'provider';

/**
 * One call as filters see it, on either side. On the consumer it is about to be sent: a filter
 * may pass a changed copy to `next` (extra metadata, a different request). On the provider it
 * has been decoded and is about to run.
 */
export interface FilterInvocation {
  readonly side: FilterSide;
  readonly service: string;
  readonly version: string;
  readonly method: string;
  readonly request: unknown;
  /**
   * A server-streaming call: `next` then resolves with the stream (an AsyncIterable) as soon as
   * it is open, not with its end.
   */
  readonly stream: boolean;
  readonly metadata: Readonly<Metadata>;
  /** Absolute local deadline on the `monotonicNow()` clock (time left: `deadline - monotonicNow()`), if any. */
  readonly deadline: number | undefined;
  /** The caller who sent it (provider side only). */
  readonly peer: Peer | undefined;
  /**
   * Values of this call by typed key (context-values.ts), shared by every copy a filter makes
   * with a spread: how one layer hands something to a later one. A filter that builds a new
   * object instead of copying must pass these on.
   */
  readonly values: ContextValues;
}

/**
 * One call on the consumer, the same object from the proxy to the wire: what the filters see,
 * and what the cluster strategy, the load balancer and the transport need besides. A filter's
 * spread copy keeps all of it.
 */
export interface Invocation extends FilterInvocation {
  readonly side: 'consumer';
  readonly group: string;
  readonly metadata: Metadata;
  readonly signal: AbortSignal | undefined;
  /** Fire and forget: the provider sends no response. */
  readonly oneWay: boolean;
  /**
   * What load balancers route on: the prompt for prefix affinity, the key for consistent
   * hashing. From the `routingKey` call option or the reference's `routingKey`.
   */
  readonly routingKey?: string;
  /**
   * An object that stands for service + version + group + method and is the same for every
   * call of that method through one reference, so a transport can cache what it derives from
   * the route (the tcp transport: the encoded route) in a WeakMap without building a string
   * key per call. Optional: transports must work without it.
   */
  readonly route?: object;
}

/**
 * A consumer call with the defaults filled in — no metadata, no deadline, no signal, unary, an
 * empty version and group, fresh values — for balancers, simulators and tests that make calls
 * by hand.
 */
export function createInvocation(
  fields: Pick<Invocation, 'service' | 'method' | 'request'> & Partial<Omit<Invocation, 'side' | 'peer' | 'values'>>,
): Invocation {
  return {
    side: 'consumer',
    version: '',
    group: '',
    metadata: {},
    deadline: undefined,
    signal: undefined,
    oneWay: false,
    stream: false,
    peer: undefined,
    ...fields,
    values: createContextValues(),
  };
}

/** The peer of a provider-side call. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}
