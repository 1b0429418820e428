/**
 * Time for the simulator: the real clock behind the real RPC stack, or a virtual clock that
 * jumps from event to event, for fast, deterministic policy comparisons.
 */
export interface Clock {
  /** Current time in ms. */
  now(): number;
  /** Resolves after `ms` of this clock's time. */
  sleep(ms: number): Promise<void>;
}

/** Wall-clock time (performance.now). */
export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/**
 * A discrete-event clock. `sleep` registers a wake-up; `run()` repeatedly lets every pending
 * promise settle, then jumps to the earliest wake-up — so simulated seconds cost microseconds
 * and two runs with the same inputs give the same results.
 */
export class VirtualClock implements Clock {
  readonly #rounds: number;
  #now = 0;
  #sequence = 0;
  readonly #timers: Array<{ at: number; sequence: number; wake: () => void }> = [];

  /**
   * @param rounds microtask rounds to let run before each jump in time; the default also lets
   *   an event-loop turn pass (setImmediate), which code awaiting real I/O needs. Pure
   *   simulations can pass a number and skip that turn: much faster.
   */
  constructor(rounds?: number) {
    this.#rounds = rounds ?? -1;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#timers.push({ at: this.#now + Math.max(0, ms), sequence: this.#sequence++, wake: resolve });
    });
  }

  /** Runs until no timer is left or `until` (virtual ms) is reached; returns the final time. */
  async run(until = Infinity): Promise<number> {
    for (;;) {
      // Let everything that can run at this instant run first.
      await drainMicrotasks(this.#rounds);
      if (this.#timers.length === 0) return this.#now;
      let next = 0;
      for (let i = 1; i < this.#timers.length; i++) {
        const timer = this.#timers[i]!;
        const best = this.#timers[next]!;
        if (timer.at < best.at || (timer.at === best.at && timer.sequence < best.sequence)) next = i;
      }
      const timer = this.#timers[next]!;
      if (timer.at > until) {
        this.#now = until;
        return this.#now;
      }
      this.#timers.splice(next, 1);
      this.#now = timer.at;
      timer.wake();
    }
  }
}

/** Lets all queued promise reactions run (several rounds, as reactions queue more reactions). */
async function drainMicrotasks(rounds: number): Promise<void> {
  for (let i = 0; i < (rounds < 0 ? 20 : rounds); i++) await Promise.resolve();
  if (rounds < 0) await new Promise((resolve) => setImmediate(resolve));
}
