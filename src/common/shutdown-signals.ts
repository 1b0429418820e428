/**
 * The signals that end a process gracefully: an orchestrator's stop (SIGTERM), Ctrl-C (SIGINT)
 * and a closed terminal or `kill -HUP` (SIGHUP, whose default would end the process with no
 * drain at all).
 */
export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/**
 * Calls `first` on the first of {@link SHUTDOWN_SIGNALS} this process gets (it starts a graceful
 * drain). Another signal while that drain runs is an operator who will not wait: `warn` says
 * what is lost and the process exits at once with code 1, instead of dying silently as it
 * would with no listener. The listeners stay until the returned function removes them (a
 * start that failed); otherwise for the life of the process.
 */
export function onShutdownSignal(first: (signal: NodeJS.Signals) => void, warn: (text: string) => void): () => void {
  let draining: NodeJS.Signals | undefined;
  const listener = (signal: NodeJS.Signals): void => {
    if (draining === undefined) {
      draining = signal;
      first(signal);
      return;
    }
    warn(
      `${signal} while draining after ${draining}: exiting now; calls still running fail, and this process's registry records stay until their TTL runs out`,
    );
    process.exit(1);
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, listener);
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) process.off(signal, listener);
  };
}
