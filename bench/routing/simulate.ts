import { LiveProviderStats } from '../../src/client/provider-stats.js';
import type { ProviderView } from '../../src/loadbalance/loadbalance.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { prefixBlockHashes } from '../../src/loadbalance/hash.js';
import { SimEngine, VirtualClock, type Clock } from '../../src/sim/sim.js';
import { defaultExtensions } from '../../src/spi/extensions.js';
import type { Invocation } from '../../src/transport/transport.js';
import type { WorkItem } from './workloads.js';

/** The SLO of "goodput": a request counts if its TTFT and its mean inter-token gap meet these. */
export const SLO = { ttftMs: 2000, itlMs: 25 };

export interface RunResult {
  ttft: number[];
  itl: number[];
  completed: number;
  shed: number;
  good: number;
  outputTokens: number;
  durationMs: number;
  promptTokens: number;
  cachedTokens: number;
  perWorker: number[];
}

/**
 * Replays `items` against `workers` simulated engines through the real balancer `policy`, on
 * a clock (virtual for the benchmark, real for the agreement check). A worker accepts at most
 * 4x its slots at once (its concurrency limit); a refused call is tried once more elsewhere
 * (failover's rule for RESOURCE_EXHAUSTED), then counted as shed. Load snapshots refresh every
 * 500 ms, as the registry load channel would deliver them.
 */
export async function simulate(policy: string, items: readonly WorkItem[], options: { workers?: number; clock?: Clock; run?: (clock: VirtualClock) => Promise<number> } = {}): Promise<RunResult> {
  const workerCount = options.workers ?? 8;
  const virtual = options.clock === undefined ? new VirtualClock(64) : undefined;
  const clock: Clock = options.clock ?? virtual!;
  const slots = 8;
  const kvCapacityTokens = 200_000;
  const engines = Array.from({ length: workerCount }, () => new SimEngine({ slots, kvCapacityTokens }, clock));
  const inFlight = new Array<number>(workerCount).fill(0);
  const views = engines.map((engine, i): ProviderView & { stats: LiveProviderStats; instance: ServiceInstance } => ({
    instance: record(i, engine, 0, clock.now()),
    address: `10.0.0.${i}:8000`,
    stats: new LiveProviderStats(),
  }));
  const balancer = defaultExtensions().loadbalance.create(policy);
  const result: RunResult = { ttft: [], itl: [], completed: 0, shed: 0, good: 0, outputTokens: 0, durationMs: 0, promptTokens: 0, cachedTokens: 0, perWorker: new Array(workerCount).fill(0) };
  let done = false;
  const start = clock.now();

  const refresh = async (): Promise<void> => {
    while (!done) {
      await clock.sleep(500);
      views.forEach((view, i) => {
        view.instance = record(i, engines[i]!, inFlight[i]!, clock.now());
        view.stats.observeLoad(view.instance.load);
      });
    }
  };

  const serve = async (item: WorkItem): Promise<void> => {
    const invocation: Invocation = { service: 'inference.LLM', version: '', group: '', method: 'generate', request: item, meta: {}, deadline: undefined, signal: undefined, oneWay: false, stream: true, routingKey: item.prompt };
    let chosen = views.indexOf(balancer.select(views, invocation).provider as (typeof views)[number]);
    if (inFlight[chosen]! >= slots * 4) {
      const others = views.filter((_, i) => i !== chosen);
      chosen = views.indexOf(balancer.select(others, invocation).provider as (typeof views)[number]);
      if (inFlight[chosen]! >= slots * 4) {
        result.shed++;
        return;
      }
    }
    const tokens = Math.ceil(item.prompt.length / 4);
    const stats = views[chosen]!.stats;
    stats.start(tokens);
    inFlight[chosen]!++;
    result.perWorker[chosen]!++;
    const generation = engines[chosen]!.generate({ promptTokens: tokens, promptBlocks: prefixBlockHashes(item.prompt, 64, 4096), maxTokens: item.maxTokens });
    const began = clock.now();
    let last = began;
    let first = -1;
    const gaps: number[] = [];
    for (;;) {
      const step = await generation.next();
      const now = clock.now();
      if (step.done === true) {
        result.promptTokens += step.value.promptTokens;
        result.cachedTokens += step.value.cachedTokens;
        break;
      }
      if (first < 0) first = now - began;
      else gaps.push(now - last);
      last = now;
      result.outputTokens++;
    }
    inFlight[chosen]!--;
    stats.end(tokens, clock.now() - began, clock.now());
    result.completed++;
    result.ttft.push(first);
    result.itl.push(...gaps);
    const meanGap = gaps.length === 0 ? 0 : gaps.reduce((sum, gap) => sum + gap, 0) / gaps.length;
    if (first <= SLO.ttftMs && meanGap <= SLO.itlMs) result.good++;
  };

  const requests: Promise<void>[] = [];
  const driver = (async () => {
    for (const item of items) {
      const wait = start + item.at - clock.now();
      if (wait > 0) await clock.sleep(wait);
      requests.push(serve(item));
    }
    await Promise.all(requests);
    done = true;
  })();
  const refreshing = refresh();
  if (virtual !== undefined) await (options.run ?? ((c) => c.run()))(virtual);
  await driver;
  await refreshing;
  result.durationMs = clock.now() - start;
  return result;
}

function record(index: number, engine: SimEngine, inFlight: number, now: number): ServiceInstance {
  const load = engine.load();
  return {
    service: 'inference.LLM', version: '1.0.0', group: '', host: '10.0.0.' + index, port: 8000, protocol: 'tcp', serializers: ['msgpack'], methods: [],
    weight: 100, startTime: 0, maxConcurrentCalls: 32,
    metadata: { slots: engine.config.slots, kvCapacityTokens: engine.config.kvCapacityTokens, prefillTokensPerSecond: engine.config.prefillTokensPerSecond },
    load: { timestamp: now, receivedAt: now, running: load.running, waiting: load.waiting + Math.max(0, inFlight - load.running - load.waiting), waitingUncachedTokens: load.waitingUncachedTokens, kvUsage: load.kvUsage, tokensPerSecond: load.tokensPerSecond, draining: false },
  };
}
