import { LiveProviderStats } from '../../src/client/provider-stats.js';
import type { ProviderView } from '../../src/loadbalance/loadbalance.js';
import type { LoadSnapshot, ServiceInstance } from '../../src/registry/registry.js';
import { createInvocation, type Invocation } from '../../src/call/invocation.js';

/** A provider view for balancer tests, with live stats the test can drive. */
export interface TestView extends ProviderView {
  readonly stats: LiveProviderStats;
}

export function view(
  port: number,
  options: {
    weight?: number;
    startTime?: number;
    inFlight?: number;
    load?: LoadSnapshot;
    metadata?: Record<string, unknown>;
    maxConcurrentCalls?: number;
  } = {},
): TestView {
  const instance: ServiceInstance = {
    service: 'inference.LLM',
    version: '1.0.0',
    group: '',
    host: '10.0.0.1',
    port,
    protocol: 'tcp',
    serializers: ['msgpack'],
    methods: [],
    weight: options.weight ?? 100,
    startTime: options.startTime ?? 0,
    ...(options.maxConcurrentCalls === undefined ? {} : { maxConcurrentCalls: options.maxConcurrentCalls }),
    metadata: options.metadata ?? {},
    ...(options.load === undefined ? {} : { load: options.load }),
  };
  const stats = new LiveProviderStats();
  stats.observeLoad(instance.load);
  for (let i = 0; i < (options.inFlight ?? 0); i++) stats.start(0);
  return { instance, address: `10.0.0.1:${port}`, stats };
}

/** A minimal invocation for balancer tests. */
export function invocation(routingKey?: string, request: unknown = {}): Invocation {
  return createInvocation({ service: 'inference.LLM', version: '1.0.0', method: 'generate', request, ...(routingKey === undefined ? {} : { routingKey }) });
}

/** Counts how often each port is picked in `picks` selections. */
export function tally(picks: number, pick: () => ProviderView): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < picks; i++) {
    const port = pick().instance.port;
    counts.set(port, (counts.get(port) ?? 0) + 1);
  }
  return counts;
}
