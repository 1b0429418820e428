import { modelsOf } from '../inference/inference.js';
import type { CallOutcome, LoadBalancer, ProviderView, RouteDecision } from '../loadbalance/loadbalance.js';
import type { Invocation } from '../call/invocation.js';

/**
 * Model-aware routing: hands the wrapped balancer only the workers whose record lists the
 * request's `model` (workers that list no models serve any). When none does — the fleet
 * changed since the gateway checked — it passes them all rather than fail the pick; the
 * worker then answers NOT_FOUND for a model it lacks.
 */
export class ModelBalancer implements LoadBalancer {
  readonly name: string;
  readonly #inner: LoadBalancer;

  constructor(inner: LoadBalancer) {
    this.#inner = inner;
    this.name = inner.name;
  }

  select(providers: readonly ProviderView[], invocation: Invocation): RouteDecision {
    const model = (invocation.request as { model?: unknown } | null)?.model;
    if (typeof model !== 'string') return this.#inner.select(providers, invocation);
    const serving = providers.filter((provider) => servesModel(provider.instance.metadata, model));
    return this.#inner.select(serving.length > 0 ? serving : providers, invocation);
  }

  /** Passes outcomes on to the wrapped balancer, for those that learn. */
  observe(outcome: CallOutcome): void {
    this.#inner.observe?.(outcome);
  }
}

/** Whether a worker record's metadata says it serves `model` (no list: any model). */
export function servesModel(metadata: Readonly<Record<string, unknown>>, model: string): boolean {
  const models = modelsOf(metadata);
  return models.length === 0 || models.includes(model);
}
