import { MAX_TIMER_MS } from '../common/validate.js';

/** A consumer connection's close options (see ClientConnection.close). */
export interface CloseOptions {
  graceful?: boolean;
  timeoutMs?: number;
}

/** How long a close with `options` waits for the calls in flight: up to `timeoutMs` (5 s by default) when graceful, else not at all. */
export function closeWaitMs(options: CloseOptions): number {
  return options.graceful === true ? Math.min(options.timeoutMs ?? 5000, MAX_TIMER_MS) : 0;
}

/**
 * A graceful close's wait for the calls in flight, shared by the transports' connections. It
 * ends when the connection says its last call ended ({@link done}), after its time, or sooner
 * when a later close asks for less ({@link shorten}: the client closing a connection that is
 * still finishing the calls of a provider that left).
 */
export class CloseWait {
  #end: (() => void) | undefined;

  /** Resolves after `ms`, or at {@link done} or a shorter {@link shorten}, whichever is first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.done(), ms);
      this.#end = () => {
        clearTimeout(timer);
        this.#end = undefined;
        resolve();
      };
    });
  }

  /** The calls in flight have ended: the wait, if any, is over. */
  done(): void {
    this.#end?.();
  }

  /** Ends the wait under way, if any, within `ms` at most. */
  shorten(ms: number): void {
    if (this.#end !== undefined) setTimeout(() => this.done(), ms).unref();
  }
}
