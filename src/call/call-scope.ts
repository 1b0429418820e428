import { AsyncLocalStorage } from 'node:async_hooks';
import type { Metadata } from './invocation.js';

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
 * Always on, in every process that serves calls: whether a handler makes calls is not known
 * until it does (a provider may create its client lazily, inside its first handler), and a
 * scope must be entered before the handler starts to follow it across its awaits. A process
 * that never serves a call never enters a scope, so a pure consumer does not switch
 * AsyncLocalStorage's promise hooks on (on Node 20 they tax every promise of the process);
 * what always-on costs a pure provider is measured in docs/BENCHMARKS.md.
 */

/** The provider call the current code serves, if any. */
export function currentCallScope(): CallScope | undefined {
  return storage.getStore();
}

/** Runs `fn` as part of the provider call `scope`. */
export function runInCallScope<T>(scope: CallScope, fn: () => T): T {
  return storage.run(scope, fn);
}
