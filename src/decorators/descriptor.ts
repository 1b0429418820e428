import { checkName, invalidOption, show } from '../common/validate.js';

/*
 * A service descriptor fixes a service's name, its methods and whether each is unary or
 * server-streaming in one constant that both sides import (vscode-jsonrpc's RequestType and
 * connect-es's DescService do this for one method and for a whole service). The provider
 * exports it with `@RpcService(descriptor)`; the consumer builds its proxy from it, so the
 * proxy knows every method's mode before the first call instead of inferring it from how the
 * call is used. The interface `T` only exists for the type checker.
 */

/** How a method answers: one value, or a stream of values ended by a trailer. */
export type MethodKind = 'unary' | 'server-stream';

/** One method of a {@link ServiceDescriptor}. */
export interface MethodDescriptor<K extends MethodKind = MethodKind> {
  readonly kind: K;
}

/** A method that answers with one value (its proxy method returns a promise). */
export const unary: MethodDescriptor<'unary'> = Object.freeze({ kind: 'unary' });

/** A method whose provider is an async generator (its proxy method returns an iterable call with a `trailer`). */
export const serverStream: MethodDescriptor<'server-stream'> = Object.freeze({ kind: 'server-stream' });

/**
 * Method names no service may export. A proxy is an ordinary object to the code around it: with
 * a `then` it is thenable, so awaiting it (or returning it from an async function) would call
 * the remote method with the promise's resolve and reject; JSON.stringify calls `toJSON`; and
 * `constructor` on a provider instance is its class, which cannot be called as a method.
 */
export const RESERVED_METHOD_NAMES: ReadonlySet<string> = new Set(['then', 'toJSON', 'constructor']);

/** Throws a TypeError naming `where` when `name` is one of {@link RESERVED_METHOD_NAMES}. */
export function checkMethodName(where: string, name: string): void {
  if (RESERVED_METHOD_NAMES.has(name)) {
    throw new TypeError(
      `shuttle-rpc: ${where}: the method name "${name}" is reserved (${[...RESERVED_METHOD_NAMES].join(', ')}): a proxy with such a method would be awaited, serialized or constructed by accident; rename the method`,
    );
  }
}

/** Only for the type checker: carries the service interface `T` inside a descriptor's type. */
declare const serviceApi: unique symbol;

/** Marks objects made by {@link defineService}; `Symbol.for` so that two copies of the package agree. */
const DESCRIPTOR = Symbol.for('shuttle-rpc:service-descriptor');

/** The string-named function members of `T`: the methods a service interface offers. */
export type MethodNames<T> = {
  [K in keyof T]: K extends string ? (T[K] extends (...args: never[]) => unknown ? K : never) : never;
}[keyof T];

/**
 * The method table {@link defineService} requires for interface `T`: every method, each
 * `serverStream` when it returns an AsyncIterable (an async generator) and `unary` otherwise.
 * A missing, extra or wrongly-kinded method is a compile error.
 */
export type MethodKinds<T> = {
  readonly [K in MethodNames<T>]: T[K] extends (...args: never[]) => infer R
    ? R extends AsyncIterable<unknown>
      ? MethodDescriptor<'server-stream'>
      : MethodDescriptor<'unary'>
    : never;
};

/**
 * A service contract made by {@link defineService}: its wire name and its methods' kinds, with
 * the interface `T` that consumers' proxies are typed by. Frozen; safe to share.
 */
export interface ServiceDescriptor<T = unknown> {
  /** The service name on the wire and in registries, e.g. `inference.LLM`. */
  readonly name: string;
  /** Method name -> kind; only these methods are exported and callable. */
  readonly methods: Readonly<Record<string, MethodDescriptor>>;
  /** Never present at run time. */
  readonly [serviceApi]?: T;
}

/**
 * The shape an implementation of `T` must have: each method takes the same request (the
 * provider may add a trailing `CallContext`) and returns the same result, or a promise of it
 * for unary methods, or any AsyncIterable of the same chunks for streams.
 */
export type ServiceImplementation<T> = {
  [K in MethodNames<T>]: T[K] extends (...args: infer A) => infer R
    ? // `any`: the provider's extra parameter (a CallContext) must accept whatever is passed there.
      // biome-ignore lint/suspicious/noExplicitAny: trailing arguments of any type (a handler's call context) may follow the request
      (...args: [...A, ...any[]]) => R extends AsyncIterable<infer C> ? AsyncIterable<C> : Awaited<R> | Promise<Awaited<R>>
    : never;
};

/**
 * Defines the contract of service `name` with interface `T`, for `@RpcService(descriptor)`
 * on the provider and `client.proxy(descriptor)` / `@RpcReference(descriptor)` on the
 * consumer. `methods` must list every method of `T` with its kind (checked by the compiler);
 * at run time the name is checked like any service name, every entry must be `unary` or
 * `serverStream`, and no method may be named `then`, `toJSON` or `constructor`; else a
 * TypeError names the bad entry.
 *
 * @example
 * const LLM = defineService<LlmApi>('inference.LLM', { generate: serverStream, embed: unary });
 */
export function defineService<T>(name: string, methods: MethodKinds<T>): ServiceDescriptor<T> {
  checkName('defineService name', name);
  if (methods === null || typeof methods !== 'object' || Array.isArray(methods)) {
    throw invalidOption(`defineService ${name} methods`, methods, 'an object of method name -> unary or serverStream');
  }
  // A null prototype: looking up a method name that came off the wire (`constructor`,
  // `__proto__`) must miss rather than find Object.prototype's members.
  const table: Record<string, MethodDescriptor> = Object.create(null);
  for (const [method, spec] of Object.entries(methods as Record<string, unknown>)) {
    checkName(`defineService ${name} method name`, method);
    checkMethodName(`defineService ${name}`, method);
    // By kind, not identity: a descriptor may be built with another copy of this package.
    const kind = (spec as Partial<MethodDescriptor> | null)?.kind;
    if (kind !== 'unary' && kind !== 'server-stream') {
      throw new TypeError(`shuttle-rpc: defineService ${name}.${method} must be unary or serverStream, got ${show(spec)}`);
    }
    table[method] = kind === 'unary' ? unary : serverStream;
  }
  if (Object.keys(table).length === 0) throw new TypeError(`shuttle-rpc: defineService ${name} lists no methods`);
  return Object.freeze({ name, methods: Object.freeze(table), [DESCRIPTOR]: true }) as ServiceDescriptor<T>;
}

/** Whether `value` was made by {@link defineService}. */
export function isServiceDescriptor(value: unknown): value is ServiceDescriptor {
  return value !== null && typeof value === 'object' && (value as Record<symbol, unknown>)[DESCRIPTOR] === true;
}
