import { monotonicNow } from '../common/clock.js';
/** A metric whose series can be removed by their labels (prom-client's Counter, Histogram, Gauge). */
export interface RemovableMetric {
  remove(labels: Record<string, string>): void;
}

/** Limits of a {@link ProviderSeries}. */
export interface ProviderSeriesLimits {
  /** Provider label values held at once; past it new providers are counted as `other`. */
  readonly maxProviders: number;
  /** How long a departed provider's series stay after its last attempt, so scrapes see its final counts. */
  readonly departedGraceMs: number;
}

/** The defaults: 1,000 providers, one minute (four scrapes at the usual 15 s). */
export const PROVIDER_SERIES_LIMITS: ProviderSeriesLimits = { maxProviders: 1000, departedGraceMs: 60_000 };

/** The label value a provider gets when {@link ProviderSeriesLimits.maxProviders} are held. */
export const OTHER_PROVIDER = 'other';

/**
 * The `provider` label values of the per-provider metrics, and the series each one has, so
 * that a provider that left takes its series with it.
 *
 * Why: consumers label attempts by provider address, and a churning fleet (workers restarted
 * on new ports, autoscaling, someone writing ever-new addresses into the registry) names new
 * addresses without end; series that are never removed grow the metrics registry — and every
 * scrape — without bound. A provider's series are removed once no client that the metrics
 * watch lists it and it has had no attempt for `departedGraceMs` (with no client watched,
 * once it has had no attempt for that long). At most `maxProviders` are held at once: when a
 * new one comes and none is left to remove, the least recently used departed provider is
 * removed early, and if every one held is still listed, the newcomer is counted as `other`
 * (as admission metrics do past 100 tenants).
 */
export class ProviderSeries {
  readonly #limits: ProviderSeriesLimits;
  readonly #listed: () => ReadonlySet<string> | undefined;
  /** Provider -> time of its last attempt; in order of last use, oldest first. */
  readonly #lastUsed = new Map<string, number>();
  /** Provider -> its series: the metric and the labels of each. */
  readonly #series = new Map<string, Map<string, { metric: RemovableMetric; labels: Record<string, string> }>>();
  #lastSweep = 0;
  /** Until when new providers are counted as `other` without looking for one to remove (none was found). */
  #fullUntil = 0;

  /** @param listed the addresses the watched clients list now; undefined when no client is watched */
  constructor(listed: () => ReadonlySet<string> | undefined, limits: ProviderSeriesLimits = PROVIDER_SERIES_LIMITS) {
    this.#listed = listed;
    this.#limits = limits;
  }

  /** Providers with series held now. */
  get size(): number {
    return this.#lastUsed.size;
  }

  /** The label value for an attempt on `provider` now: its address, or `other` when no room is left. */
  label(provider: string, now = monotonicNow()): string {
    if (this.#lastUsed.has(provider)) {
      this.#lastUsed.delete(provider);
      this.#lastUsed.set(provider, now);
      this.#maybeSweep(now);
      return provider;
    }
    this.#maybeSweep(now);
    if (this.#lastUsed.size >= this.#limits.maxProviders) {
      // Every held provider listed: looking again on each attempt would walk them all per call.
      if (now < this.#fullUntil) return OTHER_PROVIDER;
      if (!this.#removeOldestDeparted()) {
        this.#fullUntil = now + this.#sweepEveryMs();
        return OTHER_PROVIDER;
      }
    }
    this.#lastUsed.set(provider, now);
    return provider;
  }

  /** Remembers that `metric` has a series for `provider` (a label value from {@link label}) with `labels`. */
  track(provider: string, metric: RemovableMetric, key: string, labels: Record<string, string>): void {
    if (provider === OTHER_PROVIDER || !this.#lastUsed.has(provider)) return;
    let series = this.#series.get(provider);
    if (series === undefined) this.#series.set(provider, (series = new Map()));
    if (!series.has(key)) series.set(key, { metric, labels });
  }

  /** Removes the series of every provider that departed more than the grace period ago. */
  sweep(now = monotonicNow()): void {
    this.#lastSweep = now;
    const listed = this.#listed();
    for (const [provider, used] of this.#lastUsed) {
      // Oldest first: once one is within the grace period, every later one is too.
      if (now - used < this.#limits.departedGraceMs) break;
      if (listed?.has(provider) !== true) this.#remove(provider);
    }
  }

  #maybeSweep(now: number): void {
    if (now - this.#lastSweep >= this.#sweepEveryMs()) this.sweep(now);
  }

  /** Sweeps run from attempts at most every tenth of the grace period (the list of listed providers costs a walk of the fleet). */
  #sweepEveryMs(): number {
    return this.#limits.departedGraceMs / 10;
  }

  #removeOldestDeparted(): boolean {
    const listed = this.#listed();
    for (const provider of this.#lastUsed.keys()) {
      if (listed?.has(provider) === true) continue;
      this.#remove(provider);
      return true;
    }
    return false;
  }

  #remove(provider: string): void {
    this.#lastUsed.delete(provider);
    for (const { metric, labels } of this.#series.get(provider)?.values() ?? []) metric.remove(labels);
    this.#series.delete(provider);
  }
}
