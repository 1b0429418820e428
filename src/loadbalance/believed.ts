import type { ServiceInstance } from '../registry/registry.js';

/**
 * A claim more than this many times the fleet's typical one (the lower median of every
 * provider's claim) is not believed. Real fleets mix GPUs up to an order of magnitude or so
 * apart in slots and speed (the 32/16/4-slot bench fleet is 8x end to end; 256-slot H100
 * engines beside 16-slot L4 ones are 16x), and those claims must stand; a worker that says it
 * has 1e308 slots, or prefills 100x faster than its peers, is lying or broken, and load-minded
 * balancers that divide by its claim see it idle and send it most of the traffic.
 */
export const BELIEVED_FACTOR = 32;

/** The largest weight a registry record may carry (record-check.ts); a registry that checks nothing may hand over more. */
const MAX_WEIGHT = 10_000;

/** Largest figures believed from any record, fleet or not (a fleet of one has no median to compare with). */
export const BELIEVED_MAX = {
  slots: 65_536,
  maxConcurrentCalls: 1_000_000,
  prefillTokensPerSecond: 10_000_000,
  kvCapacityTokens: 1 << 30,
  decodeBaseMs: 60_000,
  decodePerSequenceMs: 60_000,
  prefillOverheadMs: 60_000,
} as const;

/**
 * The figures whose larger values draw traffic (more room, faster prefill, a bigger cache) and
 * those whose smaller values do (a faster decode step). Each is bounded from the side a lie
 * would take.
 */
const LARGER_DRAWS = ['slots', 'prefillTokensPerSecond', 'kvCapacityTokens'] as const;
const SMALLER_DRAWS = ['decodeBaseMs', 'decodePerSequenceMs', 'prefillOverheadMs'] as const;

/** One figure of one provider that was not believed as claimed, for a log line. */
export interface Doubt {
  readonly address: string;
  /** `metadata.slots`, `maxConcurrentCalls`, `weight`… */
  readonly field: string;
  readonly claimed: unknown;
  /** What is used instead; undefined when the figure is dropped (the balancer's default applies). */
  readonly believed: number | undefined;
  readonly reason: string;
}

/**
 * The providers' records as a balancer may believe them: each figure a balancer reads that is
 * not a finite positive number (NaN, Infinity, negative, a string) is dropped, so the default
 * applies; one past {@link BELIEVED_MAX} is dropped likewise; and one more than
 * {@link BELIEVED_FACTOR} times the fleet's typical claim (or, for decode times, less than its
 * typical claim over the factor) is replaced by the typical claim, so that a newcomer whose
 * figures differ wildly from its peers' starts as a typical member of the fleet. Records with
 * nothing to doubt are returned as they are; `doubt` is told of each figure not believed.
 * Computed once per registry snapshot, not per call.
 */
export function believedInstances(instances: readonly ServiceInstance[], doubt?: (doubt: Doubt) => void): readonly ServiceInstance[] {
  const typical = new Map<string, number>();
  for (const key of [...LARGER_DRAWS, ...SMALLER_DRAWS]) {
    const median = lowerMedian(instances.map((instance) => sane(instance.metadata[key], BELIEVED_MAX[key])));
    if (median !== undefined) typical.set(key, median);
  }
  const caps = lowerMedian(instances.map((instance) => sane(instance.maxConcurrentCalls, BELIEVED_MAX.maxConcurrentCalls)));
  const weights = lowerMedian(instances.map((instance) => sane(instance.weight, MAX_WEIGHT))) ?? 100;
  let changed = false;
  const result = instances.map((instance) => {
    const address = `${instance.host}:${instance.port}`;
    let metadata: Record<string, unknown> | undefined;
    const set = (key: string, claimed: unknown, believed: number | undefined, reason: string): void => {
      metadata ??= { ...instance.metadata };
      if (believed === undefined) delete metadata[key];
      else metadata[key] = believed;
      doubt?.({ address, field: `metadata.${key}`, claimed, believed, reason });
    };
    for (const key of [...LARGER_DRAWS, ...SMALLER_DRAWS]) {
      const claimed = instance.metadata[key];
      if (claimed === undefined) continue;
      const value = sane(claimed, BELIEVED_MAX[key]);
      const median = typical.get(key);
      if (value === undefined || median === undefined) {
        set(key, claimed, median, `not a number from 0 to ${BELIEVED_MAX[key]}`);
        continue;
      }
      const larger = (LARGER_DRAWS as readonly string[]).includes(key);
      if (larger ? value > median * BELIEVED_FACTOR : value * BELIEVED_FACTOR < median) {
        set(key, claimed, median, `${larger ? 'over' : 'under'} ${BELIEVED_FACTOR}x the fleet's typical ${median}`);
      }
    }
    let maxConcurrentCalls = instance.maxConcurrentCalls;
    if (maxConcurrentCalls !== undefined) {
      const value = sane(maxConcurrentCalls, BELIEVED_MAX.maxConcurrentCalls);
      const believed = value === undefined || (caps !== undefined && value > caps * BELIEVED_FACTOR) ? caps : value;
      if (believed !== value || value === undefined) {
        doubt?.({ address, field: 'maxConcurrentCalls', claimed: maxConcurrentCalls, believed, reason: `not believed (fleet's typical ${caps})` });
        maxConcurrentCalls = believed;
      }
    }
    // Weights are the operator's to set (the registry takes 1 to 10,000 and a tenfold weight may
    // well be meant), so only a weight that is no such number is replaced, by the fleet's typical.
    let weight = instance.weight;
    if (sane(weight, MAX_WEIGHT) === undefined) {
      doubt?.({ address, field: 'weight', claimed: weight, believed: weights, reason: `not a number from 0 to ${MAX_WEIGHT}` });
      weight = weights;
    }
    if (metadata === undefined && maxConcurrentCalls === instance.maxConcurrentCalls && weight === instance.weight) return instance;
    changed = true;
    const { maxConcurrentCalls: _dropped, ...rest } = instance;
    return {
      ...rest,
      weight,
      metadata: metadata ?? instance.metadata,
      ...(maxConcurrentCalls === undefined ? {} : { maxConcurrentCalls }),
    } as ServiceInstance;
  });
  return changed ? result : instances;
}

/** `value` when it is a finite number from 0 to `max`, else undefined. */
function sane(value: unknown, max: number): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= max ? value : undefined;
}

/** The lower median of the defined values; undefined when there are none. */
function lowerMedian(values: ReadonlyArray<number | undefined>): number | undefined {
  const known = values.filter((value): value is number => value !== undefined).sort((a, b) => a - b);
  return known.length === 0 ? undefined : known[Math.floor((known.length - 1) / 2)];
}
