import type { Etcd3 } from 'etcd3';

/** The two methods of etcd3's (internal) WatchManager that its watch stream's data handler calls. */
interface WatchManagerHandlers {
  handleResponse(response: unknown): void;
  handleCreatedResponse(response: unknown): void;
}

/**
 * Keeps etcd3's watch-stream bookkeeping errors inside the registry.
 *
 * etcd3 (1.1) dispatches every message of its shared watch stream from the stream's `data`
 * handler, and throws when a message names a watch it no longer tracks ("Failed to find watcher
 * for IWatchResponse", "Could not find watcher corresponding to create response", "Got a watch
 * creation error, but found no pending watchers"). That happens after races it does not handle:
 * a watch that etcd cancels (its start revision was compacted while the stream was broken) is
 * forgotten by etcd3 at once, so a later cancel request for it — or any answer etcd still sends
 * for it — matches nothing. The throw escapes from grpc-js as an unhandled rejection, which
 * ends a Node process by default. The throw only reports a message that etcd3 cannot route;
 * dropping that message is what etcd3 would do anyway, so it is caught here and reported.
 *
 * This reaches into an etcd3 internal (`watchManager`); if a future etcd3 renames it, the guard
 * is skipped (and `installed` says so) rather than failing the registry.
 */
export function guardWatchStream(client: Etcd3, report: (error: unknown) => void): { installed: boolean } {
  const manager = (client as unknown as { watchManager?: Partial<WatchManagerHandlers> }).watchManager;
  if (manager === undefined || typeof manager.handleResponse !== 'function' || typeof manager.handleCreatedResponse !== 'function') return { installed: false };
  for (const name of ['handleResponse', 'handleCreatedResponse'] as const) {
    const original = manager[name]!.bind(manager);
    manager[name] = (response: unknown): void => {
      try {
        original(response);
      } catch (error) {
        report(error);
      }
    };
  }
  return { installed: true };
}
