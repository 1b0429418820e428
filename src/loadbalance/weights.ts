import type { ServiceInstance } from '../registry/registry.js';
import type { ProviderStats, ProviderView } from './loadbalance.js';

import { checkInt, checkKnownKeys } from '../common/validate.js';
import type { ExtensionOptions } from '../common/extension-registry.js';
import { ENVIRONMENT_KEYS } from './environment.js';

/** Default warm-up of a new provider's weight (Dubbo's 10 minutes). */
export const DEFAULT_WARMUP_MS = 10 * 60 * 1000;

/**
 * The options of the weight-based balancers (`{ warmupMs }`, plus the environment keys
 * `clock` and `random`), checked; returns the warm-up.
 */
export function warmupOption(policy: string, options: ExtensionOptions): number {
  checkKnownKeys(`${policy} loadbalance options`, options, ['warmupMs', ...ENVIRONMENT_KEYS]);
  return checkInt(`${policy} loadbalance warmupMs`, options['warmupMs'], 0, 7 * 24 * 3600 * 1000, DEFAULT_WARMUP_MS);
}

/**
 * A provider's weight, ramped up over `warmupMs` after it started (Dubbo's warm-up: a JIT-cold
 * or cache-cold worker gets a share of traffic that grows with its uptime), never below 1.
 * `now` and `startTime` are on the same clock: a consumer's directory puts each provider's
 * stated start on its own monotonic clock (client/start-times.ts), so neither a provider's
 * skewed clock nor a step of the consumer's starves a provider at the minimum weight.
 * Not rounded to a whole number as Dubbo's integer weights are: early in the ramp the rounding is
 * the whole weight, and providers started 1 s apart got 2:1 of the traffic (9.5 s and 8.5 s into
 * a ten-minute warm-up: 1.58 and 1.42 of 100, rounded to 2 and 1).
 */
export function effectiveWeight(instance: ServiceInstance, now: number, warmupMs: number): number {
  const weight = instance.weight;
  if (warmupMs <= 0 || weight <= 0) return Math.max(weight, 0);
  const uptime = now - instance.startTime;
  if (instance.startTime <= 0 || uptime >= warmupMs) return weight;
  return Math.max(1, Math.min(weight, (weight * Math.max(uptime, 0)) / warmupMs));
}

/**
 * The number of calls a provider accepts at once, from its record (`maxConcurrentCalls`, set
 * by the server's option of that name, else `metadata.slots`), or Infinity when unknown.
 */
export function capacity(instance: ServiceInstance): number {
  const declared = instance.maxConcurrentCalls ?? instance.metadata['slots'];
  return typeof declared === 'number' && declared > 0 ? declared : Infinity;
}

/**
 * The requests a provider serves at once — its batch slots, `metadata.slots` — which is what
 * load is measured against. Not `maxConcurrentCalls`: a GPU worker admits several times its
 * slots (the rest queue inside the engine), so dividing by that cap would make every worker
 * look a quarter as busy as it is and blur a 4-slot worker with a 32-slot one. A provider
 * without slots falls back to its concurrency cap, then to 1.
 */
export function slots(instance: ServiceInstance): number {
  const declared = instance.metadata['slots'];
  if (typeof declared === 'number' && declared > 0) return declared;
  const cap = instance.maxConcurrentCalls;
  return typeof cap === 'number' && cap > 0 ? cap : 1;
}

/**
 * The calls a balancer counts at a provider: this consumer's calls in flight there plus its
 * recent failed answers ({@link ProviderStats.failing}), so that a provider failing every call
 * at once draws no more than a fair share while ejection has not (yet) taken it out.
 */
export function busyCalls(stats: ProviderStats): number {
  return stats.inFlight + (stats.failing ?? 0);
}

/**
 * Whether this consumer may send another call without exceeding the provider's capacity. A
 * provider with nothing in flight always has room (a capacity is more than 0), and is not
 * asked for its capacity: the balancers ask this of every candidate on every call, and
 * reading each record's metadata was the largest single cost of a pick at 1,000 providers.
 */
export function hasRoom(view: ProviderView): boolean {
  const inFlight = view.stats.inFlight;
  return inFlight === 0 || inFlight < capacity(view.instance);
}

/**
 * The providers with room, or all of them when none has room (then the provider's own
 * RESOURCE_EXHAUSTED answer is the honest outcome rather than a client-side refusal).
 */
export function withRoom<T extends ProviderView>(providers: readonly T[]): readonly T[] {
  return skipsFull(providers) ? providers.filter(hasRoom) : providers;
}

/** Whether {@link withRoom} leaves providers out: some, but not all, have no room. */
export function skipsFull(providers: readonly ProviderView[]): boolean {
  let full = 0;
  for (const provider of providers) if (!hasRoom(provider)) full++;
  return full !== 0 && full !== providers.length;
}

/** A uniformly random element, drawn with `random` (Math.random by default). */
export function pickRandom<T>(items: readonly T[], random: () => number = Math.random): T {
  return items[Math.floor(random() * items.length)]!;
}
