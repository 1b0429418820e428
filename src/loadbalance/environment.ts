import { monotonicNow } from '../common/clock.js';
import { invalidOption } from '../common/validate.js';
import type { ExtensionOptions } from '../common/extension-registry.js';

/** Something that tells the time in ms: the process's monotonic clock, a virtual clock, a test's fake. */
export interface TimeSource {
  now(): number;
}

/**
 * Where a balancer reads time and chance. Every built-in balancer takes them from here, never
 * from the process clock or `Math.random()` directly, so a simulation on a virtual clock ages load
 * reports by the same clock that stamped them, and a seeded run is reproducible.
 */
export interface BalancerEnvironment {
  /** The current time, ms, on the clock that stamps `LoadSnapshot.receivedAt`. */
  readonly now: () => number;
  /** A uniform number in [0, 1). */
  readonly random: () => number;
}

/** The option keys {@link environmentOption} reads; every built-in balancer accepts them. */
export const ENVIRONMENT_KEYS: readonly string[] = ['clock', 'random'];

/**
 * The balancer options `clock` (an object with `now()`, {@link monotonicNow} by default) and
 * `random` (a function returning [0, 1), `Math.random` by default), checked. The clock must be
 * the one that stamped the load snapshots the balancer reads (the registries and the consumer
 * stamp `receivedAt` with {@link monotonicNow}, which a wall-clock step does not move), or
 * every snapshot looks stale or from the future.
 */
export function environmentOption(policy: string, options: ExtensionOptions): BalancerEnvironment {
  const clock = options['clock'];
  const random = options['random'];
  if (clock !== undefined && (clock === null || typeof clock !== 'object' || typeof (clock as TimeSource).now !== 'function')) {
    throw invalidOption(`${policy} loadbalance clock`, clock, 'an object with a now() method returning ms');
  }
  if (random !== undefined && typeof random !== 'function') {
    throw invalidOption(`${policy} loadbalance random`, random, 'a function returning a number in [0, 1)');
  }
  const source = clock as TimeSource | undefined;
  return {
    now: source === undefined ? monotonicNow : () => source.now(),
    random: (random as (() => number) | undefined) ?? Math.random,
  };
}
