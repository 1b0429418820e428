/** Distinct service and method pairs that become `method` labels; the rest are `other`. */
export const MAX_METHOD_LABELS = 1000;

/**
 * The `method` label of a call. A consumer calls whatever method names its code gives a proxy,
 * and its filters and attempt events see the call before any provider answers UNIMPLEMENTED, so
 * each name would become series of its own in every metric labelled by method (21 for a
 * consumer call with its attempt: 3,000 names made 63,000 series). The first
 * {@link MAX_METHOD_LABELS} pairs seen keep their name; later ones share `other`. On a provider,
 * only the methods it serves get this far, far fewer than the bound.
 */
export class MethodLabels {
  readonly #byService = new Map<string, Set<string>>();
  #count = 0;

  /** How many service and method pairs have their own label (at most {@link MAX_METHOD_LABELS}). */
  get size(): number {
    return this.#count;
  }

  /** `method`, or `other` once {@link MAX_METHOD_LABELS} other pairs have their own label. */
  label(service: string, method: string): string {
    let methods = this.#byService.get(service);
    if (methods?.has(method) === true) return method;
    if (this.#count >= MAX_METHOD_LABELS) return 'other';
    if (methods === undefined) this.#byService.set(service, (methods = new Set()));
    methods.add(method);
    this.#count++;
    return method;
  }
}
