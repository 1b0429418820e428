/*
 * The shape of one call as every layer of the consumer path sees it (filters, cluster, load
 * balancer, transport), and the caller as a provider sees it. These are types only, kept below
 * all of those folders so that none of them has to import another to name a call.
 */

/** Call metadata: string keys to string values (deadline, trace context, token, routing hints). */
export type Metadata = Record<string, string>;

/** One call as a transport sees it: where it goes, what it carries, when it must stop. */
export interface Invocation {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly method: string;
  /** The request value (one value per call; see docs/PROTOCOL.md for why). */
  readonly request: unknown;
  readonly meta: Metadata;
  /** Absolute local deadline (Date.now() based), or undefined for none. */
  readonly deadline: number | undefined;
  readonly signal: AbortSignal | undefined;
  /** Fire and forget: the provider sends no response. */
  readonly oneWay: boolean;
  /** A server-streaming call. */
  readonly stream: boolean;
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

/** The peer of a provider-side call. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}
