import type { RegistryInputGuard } from '../input-guard.js';
import type { LoadSnapshot } from '../instance.js';
import { checkLoad, RECORD_LIMITS } from '../record-check.js';
import { monotonicNow } from '../../common/clock.js';

/** What one {@link LoadView.apply} changed. */
export interface LoadChanges {
  /** Addresses whose snapshot changed, appeared or went away. */
  readonly addresses: ReadonlySet<string>;
  /** Addresses whose snapshot now says draining and did not before: consumers must learn of these at once. */
  readonly newlyDraining: ReadonlySet<string>;
}

/**
 * The consumer's copy of the load channel: the latest valid snapshot per provider address,
 * updated key by key as watch events arrive (a fleet of N providers reporting every 500 ms sends
 * 2N events a second; redoing all N on each would cost N² a second).
 *
 * Entries are kept by etcd key, not by address, so a bad key is parsed and reported once.
 */
export class LoadView {
  readonly #prefixLength: number;
  readonly #guard: RegistryInputGuard;
  readonly #byKey = new Map<string, { raw: string; address: string | undefined }>();
  readonly #byAddress = new Map<string, LoadSnapshot>();

  /** @param prefix the load prefix; keys are `prefix` + the URI-encoded address */
  constructor(prefix: string, guard: RegistryInputGuard) {
    this.#prefixLength = prefix.length;
    this.#guard = guard;
  }

  /** The latest valid load reported for `address` (`host:port`), with its arrival time. */
  get(address: string): LoadSnapshot | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * Applies the mirror's `entries` for the `changed` keys (all of them when undefined: the
   * copy was replaced), and says which addresses changed and which turned draining. Work is
   * per changed key: nothing here walks the whole fleet for one event.
   */
  apply(entries: ReadonlyMap<string, string>, changed: Iterable<string> | undefined): LoadChanges {
    const now = monotonicNow();
    const addresses = new Set<string>();
    const newlyDraining = new Set<string>();
    if (changed === undefined) {
      for (const key of [...this.#byKey.keys()]) if (!entries.has(key)) this.#remove(key, addresses);
    }
    for (const key of changed ?? entries.keys()) {
      const raw = entries.get(key);
      if (raw === undefined) {
        this.#remove(key, addresses);
        continue;
      }
      if (this.#byKey.get(key)?.raw === raw) continue;
      const address = this.#guard.decode(key, key.slice(this.#prefixLength));
      const load = address === undefined ? undefined : this.#guard.read(key, raw, RECORD_LIMITS.loadBytes, checkLoad);
      const wasDraining = address !== undefined && this.#byAddress.get(address)?.draining === true;
      this.#remove(key, addresses);
      this.#byKey.set(key, { raw, address });
      if (address !== undefined && load !== undefined) {
        this.#byAddress.set(address, { ...load, receivedAt: now });
        addresses.add(address);
        if (load.draining && !wasDraining) newlyDraining.add(address);
      }
    }
    return { addresses, newlyDraining };
  }

  #remove(key: string, addresses: Set<string>): void {
    const known = this.#byKey.get(key);
    if (known === undefined) return;
    this.#byKey.delete(key);
    this.#guard.forget(key);
    if (known.address !== undefined) {
      this.#byAddress.delete(known.address);
      addresses.add(known.address);
    }
  }
}
