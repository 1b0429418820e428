import { invalidOption } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionRegistry, ExtensionSpec } from '../common/extension-registry.js';
import type { FilterInvocation, FilterSide, Metadata } from '../call/invocation.js';

export type { FilterInvocation, FilterSide } from '../call/invocation.js';

/** Calls the rest of the chain (and finally the transport or the method). */
export type NextFilter = (invocation: FilterInvocation) => Promise<unknown>;

/**
 * A link of the consumer or provider call chain (Dubbo's Filter). Contract: `invoke` calls
 * `next` at most once and returns its result or an error of its own; it must not throw
 * synchronously. Filters run in ascending `order`, the lowest outermost.
 */
export interface Filter {
  readonly name: string;
  readonly order: number;
  /** The sides this filter can run on. */
  readonly sides: readonly FilterSide[];
  /**
   * False when this instance has nothing to do (the token filter without a token): it is then
   * left out of the chain, so a default filter costs nothing until it is configured.
   */
  readonly active?: boolean;
  invoke(invocation: FilterInvocation, next: NextFilter): Promise<unknown>;
  /**
   * Provider side, optional: looks at a call before a single byte of its payload is decoded
   * (its route and metadata only) and returns the RpcError to refuse it with, or undefined.
   * The token filter checks the token here, so an unauthenticated caller cannot make the
   * provider decode anything.
   */
  admit?(call: CallAdmission): RpcError | undefined;
}

/** What {@link Filter.admit} sees of a call: its route and metadata. */
export interface CallAdmission {
  readonly service: string;
  readonly version: string;
  readonly method: string;
  readonly metadata: Readonly<Metadata>;
}

/** Filters that are part of every chain unless removed with `-name` (Dubbo's @Activate). */
export const DEFAULT_FILTERS: Readonly<Record<FilterSide, readonly string[]>> = {
  consumer: ['token'],
  provider: ['token', 'concurrency-limit'],
};

/**
 * Builds the filter list of one side from the configured `filters` entries and the defaults.
 * An entry `-name` removes a default; an entry naming a default replaces its options;
 * `defaultOptions` gives the options of defaults not listed (e.g. the configured token).
 * Returns the filters sorted by `order` (stable for equal orders).
 */
export function buildFilters(
  side: FilterSide,
  configured: readonly ExtensionSpec<Filter>[] | undefined,
  registry: ExtensionRegistry<Filter>,
  defaultOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {},
): Filter[] {
  const entries = configured ?? [];
  if (!Array.isArray(entries)) throw invalidOption(`${side} filters`, entries, 'an array of filter names, "-name", { type, options } or Filter instances');
  const removed = new Set<string>();
  const named = new Set<string>();
  for (const entry of entries) {
    if (typeof entry === 'string' && entry.startsWith('-')) {
      const name = entry.slice(1);
      if (!DEFAULT_FILTERS[side].includes(name)) {
        throw invalidOption(`${side} filters`, entry, `"-name" for a default ${side} filter: ${DEFAULT_FILTERS[side].map((n) => `-${n}`).join(', ')}`);
      }
      removed.add(name);
    } else if (typeof entry === 'string') {
      named.add(entry);
    } else if (entry !== null && typeof entry === 'object' && typeof (entry as { type?: unknown }).type === 'string') {
      named.add((entry as { type: string }).type);
    }
  }
  const filters: Filter[] = [];
  for (const name of DEFAULT_FILTERS[side]) {
    if (!removed.has(name) && !named.has(name))
      filters.push(registry.create({ type: name, options: defaultOptions[name] ?? {} }, `default ${side} filter ${name}`));
  }
  entries.forEach((entry, index) => {
    if (!(typeof entry === 'string' && entry.startsWith('-'))) filters.push(registry.create(entry, `${side} filters[${index}]`));
  });
  for (const filter of filters) {
    if (!filter.sides.includes(side)) {
      throw invalidOption(`${side} filters`, filter.name, `a filter that runs on the ${side} side (${filter.name} runs on: ${filter.sides.join(', ')})`);
    }
  }
  return filters
    .filter((filter) => filter.active !== false)
    .map((filter, index) => ({ filter, index }))
    .sort((a, b) => a.filter.order - b.filter.order || a.index - b.index)
    .map(({ filter }) => filter);
}

/**
 * Composes filters around `last` once, at start-up, so a call pays one function call per
 * filter and nothing when there are none.
 *
 * A filter is user code, so each link holds it to its contract without costing a correct
 * filter anything but one `instanceof`: what it throws synchronously becomes the call's
 * rejection (an Error as it is, anything else as an error naming the filter), and a value
 * that is not a promise fails the call with an error naming the filter (a thenable is
 * adopted) rather than reaching code that calls `.then` on it — on the consumer that threw
 * out of the microtask that starts a tick's calls, and on the provider it closed the
 * connection with every call on it.
 */
export function composeFilters(filters: readonly Filter[], last: NextFilter): NextFilter {
  let next = last;
  for (let i = filters.length - 1; i >= 0; i--) {
    const filter = filters[i]!;
    const inner = next;
    next = (invocation) => {
      let result: unknown;
      try {
        result = filter.invoke(invocation, inner);
      } catch (error) {
        return Promise.reject(isError(error) ? error : filterFault(filter, invocation, `threw ${describeThrown(error)}`));
      }
      return result instanceof Promise ? result : adopt(filter, invocation, result);
    };
  }
  return next;
}

/** A filter's non-promise result: a thenable is followed; anything else fails the call. */
function adopt(filter: Filter, invocation: FilterInvocation, result: unknown): Promise<unknown> {
  let then: unknown;
  try {
    then = (result as { then?: unknown } | null | undefined)?.then;
  } catch {
    then = undefined;
  }
  if (typeof then === 'function') return Promise.resolve(result);
  const got = result === null ? 'null' : typeof result;
  return Promise.reject(filterFault(filter, invocation, `returned ${got} instead of a promise (invoke returns what next returned, or a promise of its own)`));
}

/**
 * The error a call fails with when one of its filters breaks the filter contract. The consumer
 * gets an RpcError naming the filter; on the provider it is a plain Error, so the dispatcher
 * logs it under a correlation id and the caller learns nothing of the provider's filters.
 */
export function filterFault(filter: Filter, invocation: FilterInvocation, what: string): Error {
  const name = typeof filter.name === 'string' ? filter.name : '(unnamed)';
  // The invocation is the one the filter got, which the filter before it may have garbled.
  const side = invocation?.side === 'provider' ? 'provider' : 'consumer';
  const message = `${side} filter "${name}" of ${invocation?.service}.${invocation?.method} ${what}`;
  return side === 'provider' ? new TypeError(`shuttle-rpc: ${message}`) : new RpcError(RpcCode.INTERNAL, message);
}

/** Whether `value` is an Error, for a value whose prototype may not even be readable (a Proxy). */
function isError(value: unknown): boolean {
  try {
    return value instanceof Error;
  } catch {
    return false;
  }
}

/** A thrown non-Error, in words: its type and, for a primitive, its value. */
function describeThrown(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  if (typeof value === 'string') return `a string: ${JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value)}`;
  if (typeof value === 'object' || typeof value === 'function') return `a non-Error ${typeof value}`;
  return `a ${typeof value}: ${String(value)}`;
}

/** Tells a Filter instance from a spec. */
export function isFilter(value: unknown): value is Filter {
  return value !== null && typeof value === 'object' && typeof (value as Filter).invoke === 'function' && Array.isArray((value as Filter).sides);
}
