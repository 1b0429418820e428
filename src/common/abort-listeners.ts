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
