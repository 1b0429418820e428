import type { Logger } from '../log/log.js';
import { onShutdownSignal } from '../common/shutdown-signals.js';

/** What a signal stops: a started server. */
interface Closable {
  close(): Promise<void>;
}

/**
 * `shutdownOnSignals` from before the server listens: the first signal drains and exits 0 — at
 * once when the server is running, else as soon as its start finishes; a start that fails
 * after a signal exits 1 (the signal was taken from the process's default, which would have
 * ended it). A start that fails with no signal removes the listeners.
 */
export class StartupSignals {
  readonly #log: Logger;
  readonly #dispose: () => void;
  #signal: NodeJS.Signals | undefined;
  #running: Closable | undefined;

  constructor(log: Logger) {
    this.#log = log;
    this.#dispose = onShutdownSignal(
      (signal) => {
        this.#signal = signal;
        log.debug({ signal }, `${signal}: draining (calls in flight finish within drainTimeoutMs), then exiting; a second signal exits at once`);
        if (this.#running !== undefined) this.#stop(this.#running);
      },
      (text) => log.warn(text),
    );
  }

  /** The server has started: a signal that came meanwhile stops it now. */
  started(running: Closable): void {
    this.#running = running;
    if (this.#signal !== undefined) this.#stop(running);
  }

  /** The start failed with `error`: after a signal the process exits 1, else the listeners go. */
  failed(error: unknown): void {
    if (this.#signal === undefined) {
      this.#dispose();
      return;
    }
    this.#log.warn({ err: error }, `${this.#signal} during start-up, and the start failed: exiting`);
    process.exit(1);
  }

  #stop(running: Closable): void {
    void running.close().finally(() => process.exit(0));
  }
}
