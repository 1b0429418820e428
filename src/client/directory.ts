import { RpcCode, RpcError } from '../errors/errors.js';
import type { Registry, ServiceInstance, ServiceQuery, Subscription } from '../registry/registry.js';

/**
 * A consumer's live list of the providers of one service, fed by a registry subscription.
 * It subscribes on first use and keeps the last list it was given.
 */
export class Directory {
  readonly query: ServiceQuery;
  readonly #registry: Registry;
  readonly #onChange: () => void;
  #instances: readonly ServiceInstance[] = [];
  #eligible: readonly ServiceInstance[] = [];
  #subscription: Subscription | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;

  constructor(registry: Registry, query: ServiceQuery, onChange: () => void) {
    this.#registry = registry;
    this.query = query;
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

  /**
   * The providers new calls may go to: those not draining. Computed when the list changes,
   * not per call.
   */
  get eligible(): readonly ServiceInstance[] {
    return this.#eligible;
  }

  /** Subscribes once; resolves after the first snapshot. */
  ready(): Promise<void> {
    this.#ready ??= this.#registry
      .subscribe(this.query, (instances) => {
        this.#instances = instances;
        this.#eligible = instances.some((instance) => instance.load?.draining === true)
          ? instances.filter((instance) => instance.load?.draining !== true)
          : instances;
        this.#onChange();
      })
      .then((subscription) => {
        if (this.#closed) subscription.close();
        this.#subscription = subscription;
      })
      .catch((error: unknown) => {
        this.#ready = undefined;
        const reason = error instanceof RpcError ? error.rawMessage : (error as Error).message;
        throw new RpcError(RpcCode.UNAVAILABLE, `cannot find providers of ${this.query.service}: ${reason}`, { cause: error, details: { neverSent: true } });
      });
    return this.#ready;
  }

  close(): void {
    this.#closed = true;
    this.#subscription?.close();
  }
}
