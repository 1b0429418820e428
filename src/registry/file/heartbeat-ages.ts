import { monotonicNow } from '../../common/clock.js';

/**
 * How far ahead of the reader's clock a modification time may be and still count as a
 * heartbeat on first sight. The processes share one host and one clock; what remains is
 * timestamp rounding — up to 2 s on FAT-family filesystems.
 */
export const FUTURE_SKEW_MS = 2000;

/** Files whose heartbeats are followed at once; past this the memory starts over (first sight again). */
const MAX_FOLLOWED = 100_000;

/**
 * The age of each record file's heartbeat, measured on this process's monotonic clock.
 *
 * A file's modification time is wall time, written by another process (or by a file server,
 * for a shared folder) and read against this process's wall clock: a clock stepped by NTP, a VM
 * resumed from suspend, or two hosts that disagree would make every record look an hour old
 * (and be deleted as a crashed provider's) or an hour ahead (and be hidden). So the wall clock
 * is consulted once, on first sight of a file; after that a heartbeat is the modification time
 * *changing*, and a record's age is the time since this process saw it change, on its
 * monotonic clock, which no step moves. A changed mtime counts whatever its value, ahead or
 * behind.
 */
export class HeartbeatAges {
  readonly #followed = new Map<string, { mtimeMs: number; changedAt: number }>();
  readonly #ttlMs: number;

  /** @param ttlMs the age past which a record is stale */
  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /**
   * The age in ms of `file`'s latest heartbeat, given its modification time now: 0 when it has
   * just changed, the time since it changed when it has not. On first sight, its wall-clock age
   * capped at just past the TTL (stale, but to be watched a while before it counts as a crashed
   * provider's: a step of the wall clock must not get live records deleted); a time more than
   * {@link FUTURE_SKEW_MS} ahead counts as stale (a planted future time proves nothing).
   */
  age(file: string, mtimeMs: number, now: number = monotonicNow()): number {
    const known = this.#followed.get(file);
    if (known !== undefined) {
      if (known.mtimeMs !== mtimeMs) {
        known.mtimeMs = mtimeMs;
        known.changedAt = now;
      }
      return now - known.changedAt;
    }
    if (this.#followed.size >= MAX_FOLLOWED) this.#followed.clear();
    const wallAge = Date.now() - mtimeMs;
    // Never seen change yet: the wall clock is all there is.
    const age = wallAge < -FUTURE_SKEW_MS ? this.#ttlMs + 1 : Math.min(Math.max(0, wallAge), this.#ttlMs + 1);
    this.#followed.set(file, { mtimeMs, changedAt: now - age });
    return age;
  }

  /** Forgets `file` (gone, or deleted here): if it comes back, it is judged afresh. */
  forget(file: string): void {
    this.#followed.delete(file);
  }
}
