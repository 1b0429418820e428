import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { endpointFor, type Registry, type ServiceInstance, type ServiceQuery, type Subscription } from '../registry/registry.js';
import { LoadArrivals } from './load-arrivals.js';
import { StartTimes } from './start-times.js';

/**
 * A consumer's live list of the providers of one service, fed by a registry subscription.
 * It subscribes on first use and keeps the last list it was given. Providers are seen through
 * the consumer's transport: a provider that serves several protocols appears with the port of
 * `protocol`, and one that does not speak it at all is left out (and counted, so that "no
 * provider" can say why).
 */
export class Directory {
  readonly query: ServiceQuery;
  readonly #registry: Registry;
  readonly #protocol: string;
  readonly #onChange: () => void;
  #instances: readonly ServiceInstance[] = [];
  /** Providers' start times on this consumer's clock, for the warm-up. */
  readonly #starts = new StartTimes();
  /** Arrival stamps for load snapshots a registry delivered without one. */
  readonly #arrivals = new LoadArrivals();
  #otherProtocols: readonly string[] = [];
  #eligible: readonly ServiceInstance[] = [];
  #subscription: Subscription | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  /** What {@link registeredVariants} found, until the list changes. */
  #variants: Promise<string[]> | undefined;
  /**
   * Per method, the eligible providers whose records list it; undefined while every eligible
   * provider lists the same methods (the usual case: nothing to do per call). Emptied when the
   * list changes.
   */
  #byMethod: Map<string, readonly ServiceInstance[]> | undefined;

  #nextChange: Promise<void> | undefined;
  #wakeChanged: (() => void) | undefined;
  readonly #warn: ((problem: string) => void) | undefined;

  /**
   * @param protocol the consumer's transport name: the endpoint of each provider to use
   * @param warn told (rate-limited by the caller) of what the registry sent that was left out
   */
  constructor(registry: Registry, query: ServiceQuery, protocol: string, onChange: () => void, warn?: (problem: string) => void) {
    this.#registry = registry;
    this.#warn = warn;
    this.query = query;
    this.#protocol = protocol;
    this.#onChange = onChange;
  }

  /** Whether the first snapshot has arrived. */
  get isReady(): boolean {
    return this.#subscription !== undefined;
  }

  /** Every current provider, draining ones included (empty until {@link ready} resolves). */
  get instances(): readonly ServiceInstance[] {
    return this.#instances;
  }

  /** Protocols spoken by registered providers that were left out for not speaking ours. */
  get otherProtocols(): readonly string[] {
    return this.#otherProtocols;
  }

  /**
   * The providers new calls may go to: those not draining. Computed when the list changes,
   * not per call.
   */
  get eligible(): readonly ServiceInstance[] {
    return this.#eligible;
  }

  /**
   * The eligible providers that export `method`. Providers of one service may differ (a rolling
   * upgrade adds a method to some of them first): a call must not be sent to one that would
   * answer UNIMPLEMENTED while another has the method. A record that lists no methods (a direct
   * `shuttle://` address) is taken to export every method.
   */
  eligibleFor(method: string): readonly ServiceInstance[] {
    const byMethod = this.#byMethod;
    if (byMethod === undefined) return this.#eligible;
    let found = byMethod.get(method);
    if (found === undefined) {
      found = this.#eligible.filter((instance) => instance.methods.length === 0 || instance.methods.some((listed) => listed.name === method));
      // Method names come from the caller's code, but a proxy takes any name: keep the map bounded.
      if (byMethod.size >= MAX_METHODS_KEPT) byMethod.clear();
      byMethod.set(method, found);
    }
    return found;
  }

  /**
   * Subscribes once; resolves after the first snapshot. The registry may be a plugin's, so
   * whatever its `subscribe` does — throw, reject with anything, resolve with no subscription —
   * and whatever it calls the listener with are taken through guards: a failure rejects with an
   * UNAVAILABLE error, a listener call with no list is ignored (the last list is kept), and items
   * that are not service records are dropped; both are reported through `warn`.
   */
  ready(): Promise<void> {
    if (this.#ready !== undefined) return this.#ready;
    let subscribed: Promise<Subscription | undefined>;
    try {
      subscribed = Promise.resolve(this.#registry.subscribe(this.query, (all) => this.#update(all)));
    } catch (error) {
      subscribed = Promise.reject(error);
    }
    this.#ready = subscribed
      .then((subscription) => {
        const usable = typeof (subscription as Partial<Subscription> | undefined)?.close === 'function' ? subscription! : NO_SUBSCRIPTION;
        if (this.#closed) closeQuietly(usable);
        this.#subscription = usable;
      })
      .catch((error: unknown) => {
        this.#ready = undefined;
        let reason: string;
        try {
          reason =
            error instanceof RpcError
              ? error.rawMessage
              : error instanceof Error
                ? thrownMessage(error)
                : `registry ${registryName(this.#registry)} failed with ${thrownMessage(error)}`;
        } catch {
          reason = `registry ${registryName(this.#registry)} failed with ${thrownMessage(error)}`;
        }
        throw new RpcError(RpcCode.UNAVAILABLE, `cannot find providers of ${this.query.service}: ${reason}`, { cause: error, details: { neverSent: true } });
      });
    return this.#ready;
  }

  /** One snapshot from the registry's listener; never throws back into the registry's code. */
  #update(all: unknown): void {
    try {
      this.#apply(all);
    } catch (error) {
      this.#warn?.(
        `a list of ${this.query.service} providers from registry ${registryName(this.#registry)} could not be read (${thrownMessage(error)}); the last list is kept`,
      );
    }
  }

  #apply(all: unknown): void {
    if (!Array.isArray(all)) {
      this.#warn?.(
        `registry ${registryName(this.#registry)} sent ${all === null ? 'null' : typeof all} instead of a list of ${this.query.service} providers; the last list is kept`,
      );
      return;
    }
    const endpoints: ServiceInstance[] = [];
    const others = new Set<string>();
    let dropped = 0;
    for (const instance of all as unknown[]) {
      if (!isServiceRecord(instance)) {
        dropped++;
        continue;
      }
      const seen = endpointFor(instance, this.#protocol);
      if (seen !== undefined) endpoints.push(seen);
      else others.add(instance.protocol);
    }
    if (dropped > 0) {
      this.#warn?.(
        `registry ${registryName(this.#registry)} sent ${dropped} of ${all.length} ${this.query.service} entries that are not service records; they are left out`,
      );
    }
    const instances = this.#starts.rebase(this.#arrivals.stamp(endpoints));
    this.#instances = instances;
    this.#otherProtocols = [...others];
    this.#variants = undefined;
    this.#eligible = instances.some((instance) => instance.load?.draining === true)
      ? instances.filter((instance) => instance.load?.draining !== true)
      : instances;
    this.#byMethod = sameMethods(this.#eligible) ? undefined : new Map();
    this.#changed();
    this.#onChange();
  }

  /**
   * The versions and groups the service is registered under (`version 1.0.0`, `version 2.0.0
   * group canary`), for a "no provider" error when this directory's version or group matches
   * none of them; empty when the query names neither or the registry cannot be read. Read once
   * and kept until the list changes, so that a loop of failing calls does not read the
   * registry on every call.
   */
  registeredVariants(): Promise<string[]> {
    if (this.query.version === undefined && this.query.group === undefined) return Promise.resolve([]);
    this.#variants ??= (async () => {
      let found: readonly ServiceInstance[] = [];
      try {
        const subscription = await this.#registry.subscribe({ service: this.query.service }, (all) => {
          found = all;
        });
        subscription.close();
      } catch {
        return [];
      }
      const labels = found.map(
        (instance) => `version ${instance.version === '' ? '""' : instance.version}${instance.group === '' ? '' : ` group ${instance.group}`}`,
      );
      return [...new Set(labels)].sort();
    })();
    return this.#variants;
  }

  /**
   * Resolves at the next change of the list (or when the directory closes): one promise shared
   * by every call waiting for a provider, however many there are.
   */
  changed(): Promise<void> {
    this.#nextChange ??= new Promise<void>((resolve) => {
      this.#wakeChanged = resolve;
    });
    return this.#nextChange;
  }

  #changed(): void {
    const wake = this.#wakeChanged;
    if (wake === undefined) return;
    this.#nextChange = undefined;
    this.#wakeChanged = undefined;
    wake();
  }

  close(): void {
    this.#closed = true;
    if (this.#subscription !== undefined) closeQuietly(this.#subscription);
    this.#changed();
  }
}

/** Method names whose provider lists {@link Directory.eligibleFor} keeps at most. */
const MAX_METHODS_KEPT = 1024;

/** Whether every instance lists the same method names (then no call needs a filtered list). */
function sameMethods(instances: readonly ServiceInstance[]): boolean {
  if (instances.length < 2) return true;
  const first = new Set(instances[0]!.methods.map((method) => method.name));
  for (let i = 1; i < instances.length; i++) {
    const methods = instances[i]!.methods;
    if (methods.length !== first.size || !methods.every((method) => first.has(method.name))) return false;
  }
  return true;
}

/** What a registry that resolved `subscribe` with no subscription is given to close: nothing. */
const NO_SUBSCRIPTION: Subscription = { close: () => {} };

/** Closes a registry's subscription; its failure is the registry's, not the closing client's. */
function closeQuietly(subscription: Subscription): void {
  try {
    const closing = subscription.close() as unknown;
    if (closing instanceof Promise) closing.catch(() => {});
  } catch {
    // A plugin registry's close that throws leaves nothing for the client to do.
  }
}

/** A registry's name for messages, whatever the registry is. */
function registryName(registry: Registry): string {
  const name: unknown = registry.name;
  return typeof name === 'string' ? name : '(unnamed)';
}

/**
 * Whether a listener's item has the fields the consumer reads before it believes a record
 * (believed.ts looks at its figures): a plugin registry may hand anything. The built-in
 * registries check records fully at their edge (record-check.ts).
 */
function isServiceRecord(value: unknown): value is ServiceInstance {
  if (value === null || typeof value !== 'object') return false;
  const record = value as Partial<Record<keyof ServiceInstance, unknown>>;
  return (
    typeof record.host === 'string' &&
    Number.isInteger(record.port) &&
    typeof record.protocol === 'string' &&
    typeof record.service === 'string' &&
    Array.isArray(record.methods) &&
    record.methods.every((method: unknown) => method !== null && typeof method === 'object' && typeof (method as { name?: unknown }).name === 'string') &&
    record.metadata !== null &&
    typeof record.metadata === 'object' &&
    (record.endpoints === undefined || Array.isArray(record.endpoints))
  );
}
