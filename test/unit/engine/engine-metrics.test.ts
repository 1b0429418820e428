import { describe, expect, it } from 'vitest';
import { metricNames, readEngineMetrics } from '../../../src/engine/engine-metrics.js';

const VLLM = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="a"} 3.0
vllm:num_requests_running{engine="1",model_name="a"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a"} 4.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="a"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="a"} 0.75
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="a"} 1500.0
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",num_gpu_blocks="2048"} 1.0
`;

const SGLANG = `# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="b"} 7.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="b"} 1.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="b"} 0.4
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{model_name="b"} 812.5
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="b"} 0.6
`;

describe('engine metrics', () => {
  it('reads vLLM: running and waiting summed over engines, KV use the largest, KV capacity from cache_config_info', () => {
    const sample = readEngineMetrics(VLLM, metricNames('vllm'));
    expect(sample.load).toEqual({ running: 5, waiting: 4, kvUsage: 0.75 });
    expect(sample.generatedTokensTotal).toBe(1500);
    expect(sample.kvCapacityTokens).toBe(16 * 2048);
  });

  it('reads SGLang, and `auto` reads either', () => {
    const expected = { running: 7, waiting: 1, kvUsage: 0.4, tokensPerSecond: 812.5, cacheHitRate: 0.6 };
    expect(readEngineMetrics(SGLANG, metricNames('sglang')).load).toEqual(expected);
    expect(readEngineMetrics(SGLANG, metricNames('auto')).load).toEqual(expected);
    expect(readEngineMetrics(VLLM, metricNames()).load).toEqual({ running: 5, waiting: 4, kvUsage: 0.75 });
  });

  it('takes configured names, the rest from auto; a text without them gives an empty load', () => {
    const text = 'my_running 9\nmy_queue{a="b"} 2\n';
    expect(readEngineMetrics(text, metricNames({ running: ['my_running'], waiting: ['my_queue'] })).load).toEqual({ running: 9, waiting: 2 });
    expect(readEngineMetrics('other_metric 1\n', metricNames()).load).toEqual({});
  });

  it('rejects a bad spec naming the field and what is allowed', () => {
    expect(() => metricNames('tgi' as never)).toThrow(/engine metrics must be 'vllm', 'sglang', 'auto' or an object of metric names, got "tgi"/);
    expect(() => metricNames({ runing: ['x'] } as never)).toThrow(/unknown field "runing" \(allowed: running, waiting, kvUsage/);
    expect(() => metricNames({ running: [''] })).toThrow(/running must be a metric name or a list of them/);
  });
});
