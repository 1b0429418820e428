/**
 * Abort listeners that share one real listener per signal. One signal often covers many calls
 * at once (a request's signal across its fan-out, a CLI run's Ctrl-C across its load): a
 * listener per call on the signal itself passes Node's default of 10 listeners and prints a
 * MaxListenersExceededWarning to the caller's console, and each `addEventListener` on an
 * AbortSignal costs more than a set insert. Here the signal gets one listener, which calls the
 * set of listeners added through {@link listenAbort} once, in the order they were added.
 */
interface Fanout {
  readonly listeners: Set<() => void>;
  readonly dispatch: () => void;
}

const fanouts = new WeakMap<AbortSignal, Fanout>();

/** Calls `listener` once when `signal` aborts (never when it has aborted already). */
export function listenAbort(signal: AbortSignal | undefined, listener: () => void): void {
  if (signal === undefined) return;
  let fanout = fanouts.get(signal);
  if (fanout === undefined) {
    const listeners = new Set<() => void>();
    const dispatch = (): void => {
      fanouts.delete(signal);
      for (const each of listeners) each();
      listeners.clear();
    };
    fanout = { listeners, dispatch };
    fanouts.set(signal, fanout);
    signal.addEventListener('abort', dispatch, { once: true });
  }
  fanout.listeners.add(listener);
}

/** Forgets a listener added with {@link listenAbort}; the signal's own listener goes with the last one. */
export function unlistenAbort(signal: AbortSignal | undefined, listener: () => void): void {
  if (signal === undefined) return;
  const fanout = fanouts.get(signal);
  if (fanout === undefined || !fanout.listeners.delete(listener) || fanout.listeners.size > 0) return;
  fanouts.delete(signal);
  signal.removeEventListener('abort', fanout.dispatch);
}

/** A signal made from two by {@link linkSignals}, and the undoing of the link. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Unhooks the signal from its sources (it no longer aborts with them); safe to call twice. */
  readonly release: () => void;
}

const NOTHING_TO_RELEASE = (): void => {};

/**
 * A signal that aborts, with the same reason, when `first` or `second` does, until `release`
 * is called; call it when the work the signal covers is over.
 *
 * Why not `AbortSignal.any`: on Node 20 it keeps a WeakRef to the signal it makes in each source
 * signal's set of dependants and never takes it out, so a source the caller keeps for the
 * process life (one signal passed to every call) grows by one entry a call, without bound
 * (200,000 calls left 200,000 entries and 11 MB). Here each source holds a listener in its
 * {@link listenAbort} set only while the work runs.
 */
export function linkSignals(first: AbortSignal, second: AbortSignal): LinkedSignal {
  const controller = new AbortController();
  for (const source of [first, second]) {
    if (source.aborted) {
      controller.abort(source.reason);
      return { signal: controller.signal, release: NOTHING_TO_RELEASE };
    }
  }
  const release = (): void => {
    unlistenAbort(first, onFirst);
    unlistenAbort(second, onSecond);
  };
  const onFirst = (): void => {
    release();
    controller.abort(first.reason);
  };
  const onSecond = (): void => {
    release();
    controller.abort(second.reason);
  };
  listenAbort(first, onFirst);
  listenAbort(second, onSecond);
  return { signal: controller.signal, release };
}
