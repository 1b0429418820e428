/**
 * The simulated GPU inference engine used by the examples, tests and benchmarks: continuous
 * batching with a prefix cache, on the real clock or a virtual one. See engine.ts for the
 * model and where its default parameters come from.
 */
export { DEFAULT_ENGINE, SimEngine, type EngineConfig, type EngineLoad, type SchedulingPolicy, type SimRequest, type SimUsage } from './engine.js';
export type { EngineStep } from './step.js';
export { VirtualClock, realClock, type Clock } from './clock.js';
