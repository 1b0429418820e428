import { monotonicNow } from '../common/clock.js';
import { instanceAddress, type ServiceInstance } from '../registry/registry.js';

/** A start time within this of the local estimate is kept as the provider stated it (no copy). */
const KEEP_WITHIN_MS = 1000;

/**
 * Puts each provider's `startTime` (its own wall clock, read for the balancers' warm-up) on
 * this consumer's clock.
 *
 * A provider whose clock runs an hour ahead states a start an hour in the future: its uptime
 * looked negative and the warm-up kept it at the minimum weight for the hour plus the warm-up.
 * So the uptime a provider claims is read once, when this consumer first sees the record (on
 * the wall clock, both sides' "now"), never below zero, and turned into a start time on
 * {@link monotonicNow} — the clock the balancers read — from which it ages in real time. A claim
 * of more uptime than it has (a provider clock behind) cannot be told from a provider that has
 * run longer than this consumer has watched, and is taken as stated: it only skips the warm-up.
 */
export class StartTimes {
  #known = new Map<string, { readonly claimed: number; readonly local: number }>();

  /**
   * `instances` with each `startTime` on this consumer's monotonic clock; an instance whose
   * start needs no change is returned as it is. Forgets the providers not in `instances`.
   */
  rebase(instances: readonly ServiceInstance[]): ServiceInstance[] {
    const known = new Map<string, { readonly claimed: number; readonly local: number }>();
    let wall: number | undefined;
    let now = 0;
    const out = instances.map((instance) => {
      const claimed = instance.startTime;
      if (!(claimed > 0)) return instance;
      const address = instanceAddress(instance);
      let entry = this.#known.get(address);
      if (entry === undefined || entry.claimed !== claimed) {
        if (wall === undefined) {
          wall = Date.now();
          now = monotonicNow();
        }
        entry = { claimed, local: now - Math.max(0, wall - claimed) };
      }
      known.set(address, entry);
      return Math.abs(entry.local - claimed) <= KEEP_WITHIN_MS ? instance : { ...instance, startTime: entry.local };
    });
    this.#known = known;
    return out;
  }
}
