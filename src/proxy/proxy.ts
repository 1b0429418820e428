import type { CallContext } from '../server/call-context.js';
import type { Metadata } from '../transport/transport.js';

/** Per-call options, passed as the last argument of any proxy method. */
export interface CallOptions {
  /** Time the call may take, from now, in ms; overrides the reference's and the method's default. */
  timeoutMs?: number;
  /** Aborting it cancels the call: the promise rejects CANCELLED and the provider's `ctx.signal` fires. */
  signal?: AbortSignal;
  /** Extra metadata for this call (string values). */
  metadata?: Metadata;
  /** Fire and forget: resolves once sent, with undefined; the provider sends no answer. */
  oneWay?: boolean;
}

/**
 * The typed stub of a service interface `T`. Every method takes (at most) one request value
 * and an optional trailing {@link CallOptions}, and returns a promise of the method's result.
 * A trailing `CallContext` parameter of `T`'s methods (a provider class used as the type) is
 * dropped.
 */
export type Proxied<T> = {
  readonly [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: ProxiedMethod<T[K]>;
};

/** The proxy form of one method; see {@link Proxied}. */
export type ProxiedMethod<F> = F extends (...args: infer A) => infer R
  ? A extends [] | [CallContext?]
    ? (request?: undefined, options?: CallOptions) => Promise<Awaited<R>>
    : A extends [infer Q, ...unknown[]]
      ? (request: Q, options?: CallOptions) => Promise<Awaited<R>>
      : (request?: A[0], options?: CallOptions) => Promise<Awaited<R>>
  : never;

/** Performs one call for a proxy: which method, with which request and options. */
export type MethodCaller = (method: string, request: unknown, options: CallOptions | undefined) => Promise<unknown>;

/**
 * Property names that are never remote methods. `then` must stay undefined or awaiting a proxy
 * (returning it from an async function) would call a remote `then`; `toJSON` likewise for
 * JSON.stringify.
 */
const NOT_METHODS: ReadonlySet<string> = new Set(['then', 'toJSON']);

/**
 * Builds a proxy whose every string-named property is a function calling `caller` with that
 * method name. Functions are created once per name and cached.
 */
export function createProxy<T>(caller: MethodCaller): Proxied<T> {
  const methods = new Map<string, (request?: unknown, options?: CallOptions) => Promise<unknown>>();
  return new Proxy(Object.create(null) as object, {
    get(_target, property) {
      if (typeof property !== 'string' || NOT_METHODS.has(property)) return undefined;
      let method = methods.get(property);
      if (method === undefined) {
        method = (request?: unknown, options?: CallOptions) => caller(property, request, options);
        methods.set(property, method);
      }
      return method;
    },
    set() {
      return false;
    },
  }) as Proxied<T>;
}
