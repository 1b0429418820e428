import { AsyncLocalStorage } from 'node:async_hooks';
import type { Metadata } from '../transport/transport.js';

/**
 * The provider call a piece of code runs inside, so that calls made from a handler inherit
 * its remaining deadline and its cancellation (gRPC's deadline propagation).
 *
 * AsyncLocalStorage is process-wide by nature; this holds no configuration, only "which call
 * am I serving right now", which is exactly as global as the call stack.
 */
export interface CallScope {
  readonly deadline: number | undefined;
  readonly signal: AbortSignal;
  /** The incoming call's metadata (trace context travels on from here). */
  readonly meta?: Readonly<Metadata>;
}

const storage = new AsyncLocalStorage<CallScope>();

/*
 * Scopes are only needed where a handler can make calls, i.e. in a process that has a client.
 * On Node 20, AsyncLocalStorage.run() switches on promise hooks for the whole process, which
 * cost about 15% of unary throughput in bench:unary; a pure provider (a GPU worker that calls
 * nothing) should not pay that. So scopes start with the first client of the process; calls
 * already running then are not scoped, every later one is.
 */
let enabled = false;

/** Turns call scopes on for this process (createClient does it). */
export function enableCallScopes(): void {
  enabled = true;
}

/** The provider call the current code serves, if any. */
export function currentCallScope(): CallScope | undefined {
  return storage.getStore();
}

/** Runs `fn` as part of the provider call `scope`. */
export function runInCallScope<T>(scope: CallScope, fn: () => T): T {
  return enabled ? storage.run(scope, fn) : fn();
}

/**
 * Wraps a streaming handler's iterable so that every step of the generator runs inside
 * `scope`: a generator's body executes on the caller of `next()`, which is the transport.
 */
export function bindIterableToScope<T>(iterable: AsyncIterable<T>, scope: CallScope): AsyncIterable<T> {
  if (!enabled) return iterable;
  return {
    [Symbol.asyncIterator]() {
      const iterator = runInCallScope(scope, () => iterable[Symbol.asyncIterator]());
      return {
        next: (...args: [] | [unknown]) => runInCallScope(scope, () => iterator.next(...args)),
        return: (value?: unknown) =>
          runInCallScope(scope, () => iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: value as never })),
      };
    },
  };
}
