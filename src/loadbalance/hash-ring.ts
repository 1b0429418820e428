import { hash32 } from './hash.js';
import type { ProviderView } from './loadbalance.js';

/**
 * The ring of a consistent-hash balancer: `virtualNodes` points per provider address, sorted,
 * kept across calls and changed only as the set of addresses changes.
 *
 * The candidates of one call are usually the previous call's list (the same array: nothing to
 * do) or a subset of the addresses on the ring (a provider down or ejected, a failover retry
 * excluding the one tried): the ring is walked skipping addresses that are not candidates,
 * which finds what a ring of the candidates alone would. Only an address new to the ring
 * changes it: its points, sorted, are merged in (linear in the ring), never a rebuild of
 * every point. Rebuilding for each different list cost 2 s of blocked event loop at 2,000
 * providers, and a failover retry alternated between two lists, rebuilding on every pick.
 *
 * Each point is stored as one float: point x 2^20 + owner id, so that sorting by it sorts by
 * point, and ties go to the older owner. Owner ids are given in order of arrival; when the
 * ring holds more than twice the addresses of the current list (providers that left), it is
 * built again from the current list, so it never grows with churn.
 */
export class HashRing {
  readonly #virtualNodes: number;
  /** Sorted points, each point x {@link OWNER_SCALE} + owner id. */
  #ring: Float64Array<ArrayBufferLike> = new Float64Array(0);
  /** Address -> owner id. */
  #ids = new Map<string, number>();
  #nextId = 0;
  /** The list {@link prepare} was last given, and its views by owner id. */
  #list: readonly ProviderView[] | undefined;
  #views: Array<ProviderView | undefined> = [];
  /** Distinct addresses among the candidates: a walk ends once it has met them all. */
  #owners = 0;

  constructor(virtualNodes: number) {
    this.#virtualNodes = virtualNodes;
  }

  /** Points on the ring (for tests and measurements). */
  get size(): number {
    return this.#ring.length;
  }

  /** Makes `providers` the candidates of the walks that follow; cheap when it is the list of the last call. */
  prepare(providers: readonly ProviderView[]): void {
    if (providers === this.#list) return;
    // By address: records that all name one address (anyone can write them) are one owner.
    let added: Set<string> | undefined;
    for (const provider of providers) if (!this.#ids.has(provider.address)) (added ??= new Set()).add(provider.address);
    if (added !== undefined) {
      if (this.#ids.size + added.size > 2 * Math.max(MIN_COMPACT, providers.length)) this.#rebuild(providers);
      else this.#merge([...added]);
    }
    const views: Array<ProviderView | undefined> = new Array(this.#nextId);
    let owners = 0;
    for (const provider of providers) {
      const id = this.#ids.get(provider.address)!;
      if (views[id] === undefined) owners++;
      views[id] = provider;
    }
    this.#views = views;
    this.#owners = owners;
    this.#list = providers;
  }

  /**
   * The candidates in ring order from the first point at or after `hash`, each once: `visit`
   * returns true to stop. Returns the provider it stopped at, or undefined.
   */
  walk(hash: number, visit: (provider: ProviderView, first: boolean) => boolean): ProviderView | undefined {
    const ring = this.#ring;
    const candidates = this.#owners;
    if (ring.length === 0 || candidates === 0) return undefined;
    const start = firstAtOrAfter(ring, hash * OWNER_SCALE);
    const seen = new Set<number>();
    for (let step = 0; step < ring.length && seen.size < candidates; step++) {
      const owner = ring[(start + step) % ring.length]! % OWNER_SCALE;
      const provider = this.#views[owner];
      if (provider === undefined || seen.has(owner)) continue;
      seen.add(owner);
      if (visit(provider, seen.size === 1)) return provider;
    }
    return undefined;
  }

  #pointsOf(addresses: readonly string[], firstId: number): Float64Array {
    const points = new Float64Array(addresses.length * this.#virtualNodes);
    let at = 0;
    addresses.forEach((address, index) => {
      for (let i = 0; i < this.#virtualNodes; i++) points[at++] = hash32(`${address}#${i}`) * OWNER_SCALE + firstId + index;
    });
    return points.sort();
  }

  #merge(added: readonly string[]): void {
    const firstId = this.#nextId;
    for (const address of added) this.#ids.set(address, this.#nextId++);
    const fresh = this.#pointsOf(added, firstId);
    const old = this.#ring;
    const merged = new Float64Array(old.length + fresh.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < fresh.length) merged[k++] = old[i]! <= fresh[j]! ? old[i++]! : fresh[j++]!;
    while (i < old.length) merged[k++] = old[i++]!;
    while (j < fresh.length) merged[k++] = fresh[j++]!;
    this.#ring = merged;
  }

  #rebuild(providers: readonly ProviderView[]): void {
    const addresses = [...new Set(providers.map((provider) => provider.address))];
    this.#ids = new Map(addresses.map((address, id) => [address, id]));
    this.#nextId = addresses.length;
    this.#ring = this.#pointsOf(addresses, 0);
  }
}

/** Owner ids fit below this (about a million addresses); point x scale + id stays an exact float. */
const OWNER_SCALE = 2 ** 20;
/** A ring of fewer addresses than twice this is never compacted. */
const MIN_COMPACT = 64;

/** Index of the first element at or after `value`, wrapping to 0 past the end. */
function firstAtOrAfter(points: Float64Array, value: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (points[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low === points.length ? 0 : low;
}
