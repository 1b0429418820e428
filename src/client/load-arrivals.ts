import { monotonicNow } from '../common/clock.js';
import type { LoadSnapshot, ServiceInstance } from '../registry/registry.js';

/**
 * Stamps `receivedAt` on load snapshots that a registry delivered without one (a plugin
 * registry; the built-in ones stamp it themselves).
 *
 * A snapshot's age is judged by when it arrived here: without `receivedAt` a balancer falls back
 * to the provider's own `timestamp`, which is another host's wall clock — an hour ahead and the
 * report looked fresh for an hour after the provider stopped reporting, an hour behind and it
 * was never trusted. The stamp is kept per snapshot object, so a registry that hands over the
 * same snapshot again does not make it look new.
 */
export class LoadArrivals {
  #stamped = new WeakMap<LoadSnapshot, LoadSnapshot>();

  /** `instances`, each snapshot with a `receivedAt`; an instance that needs none is returned as it is. */
  stamp(instances: readonly ServiceInstance[]): ServiceInstance[] {
    let now: number | undefined;
    return instances.map((instance) => {
      const load = instance.load;
      if (load === undefined || load.receivedAt !== undefined) return instance;
      let stamped = this.#stamped.get(load);
      if (stamped === undefined) {
        now ??= monotonicNow();
        stamped = { ...load, receivedAt: now };
        this.#stamped.set(load, stamped);
      }
      return { ...instance, load: stamped };
    });
  }
}
