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
  /** The call's deadline on the `monotonicNow()` clock, if it has one. */
  readonly deadline: number | undefined;
  readonly signal: AbortSignal;
  /** The incoming call's metadata (trace context travels on from here). */
  readonly meta?: Readonly<Metadata>;
}

const storage = new AsyncLocalStorage<CallScope>();

/*
 * Scopes are followed across a handler's awaits (AsyncLocalStorage) only once the process is
 * "armed": by its first client, by the first currentCallScope(), or by a server with
 * `callScopes: 'always'`. On Node 20 AsyncLocalStorage's promise hooks tax every promise of the
 * process once it is used (a provider's unary calls and stream chunks cost 10–20 % more), and a
 * scope has nothing to propagate to until there is a client to make calls. So a pure provider
 * never switches the hooks on, and neither does a pure consumer, which never serves a call.
 *
 * Before arming, a handler's synchronous part still runs with its call noted (`running`). A
 * client created there — a provider that creates its client lazily, inside its first handler —
 * arms the process and enters that call's scope for the rest of the handler, so even that first
 * call propagates. What is not recovered: calls already past their first await when the first
 * client is made; create the client before serving, or use `callScopes: 'always'`, for those.
 */
let armed = false;
/** The call whose handler runs synchronously right now, while the process is not armed. */
let running: CallScope | undefined;
/** Whether arming entered `running`'s scope, to be left when the outermost synchronous part returns. */
let entered = false;

/**
 * From now on, handlers run in AsyncLocalStorage scopes. Called by every new client (and by a
 * server with `callScopes: 'always'`); inside a handler's synchronous part, the rest of that
 * handler joins its call's scope.
 */
export function armCallScopes(): void {
  if (armed) return;
  armed = true;
  if (running !== undefined) {
    storage.enterWith(running);
    entered = true;
  }
}

/** Whether the process follows scopes across awaits (see {@link armCallScopes}). */
export function callScopesArmed(): boolean {
  return armed;
}

/**
 * The provider call the current code serves, if any. Arms the process (code that asks for its
 * scope wants it followed from then on).
 */
export function currentCallScope(): CallScope | undefined {
  armCallScopes();
  return storage.getStore();
}

/** Runs `fn` as part of the provider call `scope`. */
export function runInCallScope<T>(scope: CallScope, fn: () => T): T {
  if (armed) return storage.run(scope, fn);
  const outer = running;
  running = scope;
  try {
    return fn();
  } finally {
    running = outer;
    if (entered && outer === undefined) {
      entered = false;
      // What runs after the outermost call's synchronous part, in the same turn, belongs to the
      // transport, not to the call; the handler's continuations keep the scope they were
      // created in.
      storage.enterWith(undefined as unknown as CallScope);
    }
  }
}
