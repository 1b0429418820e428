import { SimEngine, type Clock, type EngineConfig } from '../../src/sim/sim.js';
import type { ServiceInstance } from '../../src/registry/registry.js';

/*
 * The simulated fleets of bench:routing and the registry records their workers publish.
 */

/** One simulated worker's size. */
export interface WorkerSpec {
  readonly slots: number;
  readonly prefillTokensPerSecond: number;
  readonly kvCapacityTokens: number;
  /** The engine's step token budget (see EngineConfig). */
  readonly maxBatchedTokens: number;
}

/**
 * A worker of `slots` batch slots on a GPU sized to match: prefill speed and KV cache grow with
 * the slots (1,250 prompt tokens/s and 25k KV tokens a slot — a 32-slot H100-class worker
 * prefills 40k tokens/s and holds 800k tokens; a 4-slot one 5k/s and 100k), with no step token
 * budget: each admitted prompt is computed whole in one step. The routing figures in
 * docs/BENCHMARKS.md were measured so; the engine's default budget (2048, chunked prefill)
 * would chunk the b2b workload's ~6k-token prompts into steps that each pay the prefill
 * overhead, and move its TTFTs (b2b on the uniform fleet at 6 req/s: p50 758 -> 871 ms).
 */
export function sized(slots: number): WorkerSpec {
  return { slots, prefillTokensPerSecond: slots * 1250, kvCapacityTokens: slots * 25_000, maxBatchedTokens: Infinity };
}

/** `uniform`: eight 8-slot workers; `mixed`: 2 x 32 slots, 3 x 16, 3 x 4. */
export const FLEETS = {
  uniform: Array.from({ length: 8 }, () => sized(8)),
  mixed: [32, 32, 16, 16, 16, 4, 4, 4].map(sized),
} satisfies Record<string, WorkerSpec[]>;

export type FleetName = keyof typeof FLEETS;

/** A simulated engine for `spec`, with the simulator's default decode and overhead timings. */
export function engineFor(spec: WorkerSpec, clock: Clock): SimEngine {
  const config: Partial<EngineConfig> = {
    slots: spec.slots,
    kvCapacityTokens: spec.kvCapacityTokens,
    prefillTokensPerSecond: spec.prefillTokensPerSecond,
    maxBatchedTokens: spec.maxBatchedTokens,
  };
  return new SimEngine(config, clock);
}

/**
 * The registry record of worker `index`, as the engine worker publishes it: slots, speeds and
 * KV size in the metadata, a concurrency cap of 4 x slots (calls beyond the batch queue in the
 * engine), and the live load stamped `now` on the clock the consumers read, with the summary
 * of its prefix cache unless `publishCache` is false. `weight` is 100, or 10 x slots for a
 * slot-weighted round-robin.
 */
export function recordOf(index: number, engine: SimEngine, inFlight: number, now: number, slotWeighted: boolean, publishCache = true): ServiceInstance {
  const load = engine.load();
  const config = engine.config;
  return {
    service: 'inference.LLM',
    version: '1.0.0',
    group: '',
    host: `10.0.0.${index}`,
    port: 8000,
    protocol: 'tcp',
    serializers: ['msgpack'],
    methods: [],
    weight: slotWeighted ? config.slots * 10 : 100,
    startTime: 0,
    maxConcurrentCalls: config.slots * 4,
    metadata: {
      slots: config.slots,
      kvCapacityTokens: config.kvCapacityTokens,
      prefillTokensPerSecond: config.prefillTokensPerSecond,
      prefillOverheadMs: config.prefillOverheadMs,
      decodeBaseMs: config.decodeBaseMs,
      decodePerSequenceMs: config.decodePerRunningMs,
    },
    load: {
      timestamp: now,
      receivedAt: now,
      running: load.running,
      waiting: load.waiting + Math.max(0, inFlight - load.running - load.waiting),
      waitingUncachedTokens: load.waitingUncachedTokens,
      kvUsage: load.kvUsage,
      tokensPerSecond: load.tokensPerSecond,
      draining: false,
      ...(publishCache ? { cachedPrefixes: load.cachedPrefixes } : {}),
    },
  };
}
