import type { ProviderStatus, RpcClient } from '../client/client.js';
import { LLM_SERVICE } from '../inference/inference.js';

/** How long a look at the fleet is reused: every request asks, the fleet changes far slower. */
const FRESH_MS = 100;

/**
 * The LLM workers as the gateway's client sees them, looked at once per {@link FRESH_MS} rather
 * than on every request: `client.providers()` builds a status per provider (address, health,
 * breaker), and the model check and the admission queue's capacity need the fleet several times
 * a request. A worker that joins, leaves or is ejected shows within that time; while there is
 * none, every call looks again.
 */
export class FleetView {
  readonly #client: RpcClient;
  #workers: ProviderStatus[] = [];
  #slots = 0;
  #lookedAt = Number.NEGATIVE_INFINITY;

  constructor(client: RpcClient) {
    this.#client = client;
  }

  /** The LLM workers (`inference.LLM` providers), ejected or not. */
  workers(): readonly ProviderStatus[] {
    this.#refresh();
    return this.#workers;
  }

  /** Calls the LLM workers run at once: the sum of their `slots` (Infinity when one has none); ejected, draining ones and open breakers count 0. */
  slots(): number {
    this.#refresh();
    return this.#slots;
  }

  #refresh(): void {
    const now = performance.now();
    // An empty fleet is looked at every time: it costs nothing, and the first workers to
    // arrive (the registry's first answer) must not wait for the next look.
    if (now - this.#lookedAt < FRESH_MS && this.#workers.length > 0) return;
    this.#lookedAt = now;
    const workers: ProviderStatus[] = [];
    let slots = 0;
    for (const provider of this.#client.providers()) {
      if (provider.service !== LLM_SERVICE) continue;
      workers.push(provider);
      // A draining worker (closing, or its engine down) takes no new calls: its slots are not the fleet's.
      if (provider.ejected || provider.breaker === 'open' || provider.load?.draining === true) continue;
      const declared = Number(provider.metadata['slots']);
      slots += Number.isFinite(declared) && declared > 0 ? declared : Infinity;
    }
    this.#workers = workers;
    this.#slots = slots;
  }
}
