import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { LoadSnapshot } from '../registry/instance.js';

/**
 * Which Prometheus series of an engine's `/metrics` become which field of a shuttle load
 * snapshot. Each field lists candidate names; the first present is used, summed over its label
 * sets (an engine serving several models has one series per model); `kvUsage` takes the
 * largest. `generatedTokensTotal` is a counter turned into tokens per second between polls.
 */
export interface EngineMetricNames {
  running: readonly string[];
  waiting: readonly string[];
  /** KV-cache use as a fraction 0..1. */
  kvUsage: readonly string[];
  /** A gauge already in tokens per second. */
  tokensPerSecond?: readonly string[];
  /** A counter of generated tokens. */
  generatedTokensTotal?: readonly string[];
  /** Prefix-cache hit rate 0..1. */
  cacheHitRate?: readonly string[];
}

/** Metric names of the engines shuttle knows; `auto` tries them all. */
export const ENGINE_METRIC_PRESETS: Readonly<Record<'vllm' | 'sglang', EngineMetricNames>> = {
  // vLLM V1 (kv_cache_usage_perc is a 0..1 fraction despite its name; gpu_cache_usage_perc is
  // the name before 0.10).
  vllm: {
    running: ['vllm:num_requests_running'],
    waiting: ['vllm:num_requests_waiting'],
    kvUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
    generatedTokensTotal: ['vllm:generation_tokens_total'],
  },
  sglang: {
    running: ['sglang:num_running_reqs'],
    waiting: ['sglang:num_queue_reqs'],
    kvUsage: ['sglang:token_usage'],
    tokensPerSecond: ['sglang:gen_throughput'],
    cacheHitRate: ['sglang:cache_hit_rate'],
  },
};

const AUTO: EngineMetricNames = {
  running: [...ENGINE_METRIC_PRESETS.vllm.running, ...ENGINE_METRIC_PRESETS.sglang.running],
  waiting: [...ENGINE_METRIC_PRESETS.vllm.waiting, ...ENGINE_METRIC_PRESETS.sglang.waiting],
  kvUsage: [...ENGINE_METRIC_PRESETS.vllm.kvUsage, ...ENGINE_METRIC_PRESETS.sglang.kvUsage],
  tokensPerSecond: ENGINE_METRIC_PRESETS.sglang.tokensPerSecond!,
  generatedTokensTotal: ENGINE_METRIC_PRESETS.vllm.generatedTokensTotal!,
  cacheHitRate: ENGINE_METRIC_PRESETS.sglang.cacheHitRate!,
};

/** `vllm`, `sglang`, `auto` (either), or explicit names (missing fields from `auto`). */
export type EngineMetricsSpec = 'vllm' | 'sglang' | 'auto' | Partial<EngineMetricNames>;

/** The names a spec stands for; a clear error naming the spec when it is not one. */
export function metricNames(spec: EngineMetricsSpec = 'auto'): EngineMetricNames {
  if (spec === 'auto') return AUTO;
  if (spec === 'vllm' || spec === 'sglang') return ENGINE_METRIC_PRESETS[spec];
  if (spec === null || typeof spec !== 'object') {
    throw new Error(`engine metrics must be 'vllm', 'sglang', 'auto' or an object of metric names, got ${JSON.stringify(spec)}`);
  }
  const names: Record<string, readonly string[] | undefined> = { ...AUTO };
  for (const [field, value] of Object.entries(spec)) {
    if (!(field in AUTO)) throw new Error(`engine metrics: unknown field ${JSON.stringify(field)} (allowed: ${Object.keys(AUTO).join(', ')})`);
    const list = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(list) || list.some((name) => typeof name !== 'string' || name === '')) {
      throw new Error(`engine metrics: ${field} must be a metric name or a list of them, got ${JSON.stringify(value)}`);
    }
    names[field] = list;
  }
  return names as unknown as EngineMetricNames;
}

/** vLLM's family whose labels give the KV capacity. */
const CACHE_CONFIG = 'vllm:cache_config_info';

/** Every metric family {@link readEngineMetrics} looks at with `names`. */
export function familiesRead(names: EngineMetricNames): string[] {
  return [...Object.values(names).flat(), CACHE_CONFIG];
}

/** One parse of an engine's /metrics: the load fields found, and the token counter if any. */
export interface EngineSample {
  readonly load: Partial<Omit<LoadSnapshot, 'timestamp' | 'receivedAt' | 'draining'>>;
  readonly generatedTokensTotal: number | undefined;
  /** KV capacity in tokens, from vLLM's `cache_config_info` (blocks × block size) when present. */
  readonly kvCapacityTokens: number | undefined;
}

/** Reads the load fields out of a Prometheus text exposition. */
export function readEngineMetrics(text: string, names: EngineMetricNames): EngineSample {
  const families = new Map<string, Array<{ value: string; labels?: Record<string, string> }>>();
  for (const family of parsePrometheusTextFormat(text)) families.set(family.name, family.metrics);
  const values = (candidates: readonly string[] | undefined): number[] | undefined => {
    for (const name of candidates ?? []) {
      const series = families.get(name);
      if (series === undefined || series.length === 0) continue;
      const numbers = series.map((metric) => Number(metric.value)).filter(Number.isFinite);
      if (numbers.length > 0) return numbers;
    }
    return undefined;
  };
  const sum = (candidates: readonly string[] | undefined): number | undefined => values(candidates)?.reduce((total, value) => total + value, 0);
  const max = (candidates: readonly string[] | undefined): number | undefined => {
    const found = values(candidates);
    return found === undefined ? undefined : Math.max(...found);
  };

  const load: Record<string, number> = {};
  const running = sum(names.running);
  const waiting = sum(names.waiting);
  const kvUsage = max(names.kvUsage);
  const tokensPerSecond = sum(names.tokensPerSecond);
  const cacheHitRate = max(names.cacheHitRate);
  if (running !== undefined) load.running = running;
  if (waiting !== undefined) load.waiting = waiting;
  if (kvUsage !== undefined) load.kvUsage = Math.min(1, Math.max(0, kvUsage));
  if (tokensPerSecond !== undefined) load.tokensPerSecond = tokensPerSecond;
  if (cacheHitRate !== undefined) load.cacheHitRate = Math.min(1, Math.max(0, cacheHitRate));

  const cacheConfig = families.get(CACHE_CONFIG)?.[0]?.labels;
  const blocks = Number(cacheConfig?.num_gpu_blocks);
  const blockSize = Number(cacheConfig?.block_size);
  return {
    load,
    generatedTokensTotal: sum(names.generatedTokensTotal),
    kvCapacityTokens: blocks > 0 && blockSize > 0 ? blocks * blockSize : undefined,
  };
}
