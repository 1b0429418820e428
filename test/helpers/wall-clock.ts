import { vi } from 'vitest';

const realNow = Date.now.bind(Date);

/**
 * Sets this process's wall clock (`Date.now()`) `ms` away from the true time from now on, as an
 * NTP step, a resumed VM or an operator would; timers and the monotonic clock are left alone.
 * A second call replaces the first offset. Undone by `vi.restoreAllMocks()`.
 */
export function stepWallClock(ms: number): void {
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + ms);
}

/** An hour, the size of step the tests take. */
export const HOUR_MS = 3_600_000;

/** Resolves after `ms` of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
