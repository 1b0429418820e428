import { describe, expect, it } from 'vitest';
import type { Invocation } from '../../../src/call/invocation.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { createMetricsFilter } from '../../../src/metrics/filter.js';
import { MAX_METHOD_LABELS } from '../../../src/metrics/method-labels.js';
import { ShuttleMetrics } from '../../../src/metrics/metrics.js';

/** Series in `metrics` whose `method` label is set, and the distinct values of that label. */
async function methodSeries(metrics: ShuttleMetrics): Promise<{ series: number; methods: Set<string> }> {
  let series = 0;
  const methods = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const value of metric.values) {
      const method = value.labels['method'];
      if (method === undefined) continue;
      series++;
      methods.add(String(method));
    }
  }
  return { series, methods };
}

describe('method labels: bounded whatever names a consumer calls', () => {
  it('10,000 method names no provider serves, through the filter and the attempt events, label at most 1,000 methods', async () => {
    const metrics = new ShuttleMetrics();
    const filter = createMetricsFilter({ metrics });
    const unimplemented = (): Promise<never> => Promise.reject(new RpcError(RpcCode.UNIMPLEMENTED, 'no such method'));
    const call = async (method: string): Promise<void> => {
      const invocation = { side: 'consumer', service: 'svc', method, stream: false } as unknown as Invocation;
      await filter.invoke(invocation, unimplemented).catch(() => {});
      metrics.attempt({ service: 'svc', method, provider: '127.0.0.1:1', attempt: 1, code: RpcCode.UNIMPLEMENTED, seconds: 0.001 });
    };
    await call('echo');
    for (let i = 0; i < 10_000; i++) await call(`name-${i}`);
    await call('echo');
    const { series, methods } = await methodSeries(metrics);
    // The first names keep their own label; the rest are counted under one `other`.
    expect(methods.size).toBe(MAX_METHOD_LABELS + 1);
    expect(methods.has('echo')).toBe(true);
    expect(methods.has('other')).toBe(true);
    expect(methods.has('name-9999')).toBe(false);
    expect(metrics.methodLabels).toBe(MAX_METHOD_LABELS);
    // Each labelled method costs a fixed number of series (calls, latency buckets, in flight, attempts).
    const perMethod = Math.ceil(series / methods.size);
    expect(perMethod).toBeLessThan(30);
    const calls = await metrics.calls.get();
    const other = calls.values.find((value) => value.labels['method'] === 'other');
    expect(other?.value).toBe(10_000 - (MAX_METHOD_LABELS - 1));
  });
});
