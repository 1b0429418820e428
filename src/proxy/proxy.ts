import type { CallContext } from '../call/call-context.js';
import type { Metadata } from '../call/invocation.js';
import { RecentMap } from '../common/recent-map.js';
import { RESERVED_METHOD_NAMES } from '../decorators/descriptor.js';
import { createCall, type CallMode, type RpcCall } from './call.js';

export { createCall, type CallMode, type RpcCall } from './call.js';

/** Per-call options, passed as the last argument of any proxy method. */
export interface CallOptions {
  /** Time the call may take, from now, in ms (a stream: the whole stream). Overrides the defaults. */
  timeoutMs?: number;
  /** Aborting it cancels the call: it rejects CANCELLED and the provider's `ctx.signal` fires. */
  signal?: AbortSignal;
  /** Extra metadata for this call (string values). */
  metadata?: Metadata;
  /** Fire and forget: resolves once sent, with undefined; the provider sends no answer. */
  oneWay?: boolean;
  /**
   * What load balancers route this call on (the prompt for `prefix-affinity`, the key for
   * `consistent-hash`), overriding the reference's `routingKey`.
   */
  routingKey?: string;
  /**
   * When no provider is listed for the call (none registered yet, every one draining, none
   * exporting the method), wait within the call's deadline for one to be listed instead of
   * failing at once with UNAVAILABLE (gRPC's `waitForReady`). It does not wait out providers
   * that are listed but failing: those are the cluster strategy's to retry. Overrides the
   * reference's `waitForReady`.
   */
  waitForReady?: boolean;
}

/** A server-streaming call: iterate it with `for await`; `trailer` resolves after the end. */
export interface StreamingCall<C, TReturn = unknown> extends AsyncIterable<C> {
  /** The provider generator's return value (e.g. token usage), once the stream has ended. */
  readonly trailer: Promise<TReturn | undefined>;
}

/** Call options that make a call one-way: it resolves undefined once sent. */
export type OneWayCallOptions = CallOptions & { oneWay: true };

/** Call options that keep the answer: everything but `oneWay: true`. */
export type AnsweredCallOptions = CallOptions & { oneWay?: false };

/**
 * The typed stub of a service interface `T`. Every method takes (at most) one request value
 * and an optional trailing {@link CallOptions}. A method returning an AsyncIterable (an async
 * generator on the provider) becomes a {@link StreamingCall}; any other returns a promise of
 * its result. A trailing `CallContext` parameter of `T`'s methods (a provider class used as the
 * type) is dropped.
 *
 * A unary method called with `{ oneWay: true }` resolves undefined (the provider sends no
 * answer), so that call is typed `Promise<undefined>`, and one whose `oneWay` is only known
 * as a boolean `Promise<R | undefined>` (as is `ReturnType` of a unary stub, which reads the
 * last overload). A streaming method does not accept `oneWay: true`: the call would fail
 * INVALID_ARGUMENT.
 */
export type Proxied<T> = {
  readonly [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: ProxiedMethod<T[K]>;
};

/** The result type of a proxied method returning `R`. */
export type ProxiedResult<R> =
  R extends AsyncGenerator<infer C, infer TReturn, unknown>
    ? StreamingCall<C, TReturn>
    : R extends AsyncIterable<infer C>
      ? StreamingCall<C>
      : Promise<Awaited<R>>;

/** The proxy form of one method; see {@link Proxied}. */
export type ProxiedMethod<F> = F extends (...args: infer A) => infer R
  ? A extends [] | [CallContext?]
    ? ProxiedStub<undefined, R, true>
    : A extends [infer Q, ...unknown[]]
      ? ProxiedStub<Q, R, false>
      : ProxiedStub<A[0], R, true>
  : never;

/**
 * The stub of a method with request type `Q` (optional when `Optional`) and result `R`: one
 * signature for a streaming method, three overloads for a unary one (one-way, answered, and
 * a `oneWay` known only at run time).
 */
type ProxiedStub<Q, R, Optional extends boolean> = [R] extends [AsyncIterable<unknown>]
  ? Optional extends true
    ? (request?: Q, options?: AnsweredCallOptions) => ProxiedResult<R>
    : (request: Q, options?: AnsweredCallOptions) => ProxiedResult<R>
  : Optional extends true
    ? {
        (request: Q | undefined, options: OneWayCallOptions): Promise<undefined>;
        (request?: Q, options?: AnsweredCallOptions): Promise<Awaited<R>>;
        (request: Q | undefined, options: CallOptions): Promise<Awaited<R> | undefined>;
      }
    : {
        (request: Q, options: OneWayCallOptions): Promise<undefined>;
        (request: Q, options?: AnsweredCallOptions): Promise<Awaited<R>>;
        (request: Q, options: CallOptions): Promise<Awaited<R> | undefined>;
      };

/** Method functions a proxy keeps per generation (see RecentMap): far more than any service has. */
const MAX_CACHED_METHODS = 1024;

/** Performs one call for a proxy: which method, with which request and options, in which mode. */
export type MethodCaller = (method: string, request: unknown, options: CallOptions | undefined, mode: CallMode) => Promise<unknown>;

/**
 * Builds a proxy whose every string-named property is a function making an {@link RpcCall}
 * to that method of `service`, except the reserved names (`then`, `toJSON`, `constructor`),
 * which are undefined: awaiting the proxy or serializing it calls nothing remote. Functions
 * are created once per name and cached (the names in use: at most 2,048 are kept). Turned into a string (a template literal, `+`,
 * String()) it reads `[shuttle-rpc proxy of service]`: without its own Symbol.toPrimitive,
 * JavaScript would call a remote `toString` and then `valueOf`, and their rejections, which
 * nobody holds, would end the process.
 */
export function createProxy<T>(service: string, caller: MethodCaller): Proxied<T> {
  // Bounded: the names come from the caller's code, but any name is taken, and code that names
  // methods from data (a bridge, a CLI) would otherwise keep a function per name ever asked for.
  const methods = new RecentMap<string, (request?: unknown, options?: CallOptions) => RpcCall>(MAX_CACHED_METHODS);
  const toPrimitive = (): string => `[shuttle-rpc proxy of ${service}]`;
  return new Proxy(Object.create(null) as object, {
    get(_target, property) {
      if (property === Symbol.toPrimitive) return toPrimitive;
      if (typeof property !== 'string' || RESERVED_METHOD_NAMES.has(property)) return undefined;
      let method = methods.get(property);
      if (method === undefined) {
        const label = `${service}.${property}`;
        method = (request?: unknown, options?: CallOptions) => createCall((mode) => caller(property, request, options, mode), label);
        methods.set(property, method);
      }
      return method;
    },
    set() {
      return false;
    },
  }) as Proxied<T>;
}
