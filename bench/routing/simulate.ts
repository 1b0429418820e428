import { LiveProviderStats } from '../../src/client/provider-stats.js';
import { prefixBlockHashes } from '../../src/loadbalance/hash.js';
import type { LoadBalancer, ProviderView } from '../../src/loadbalance/loadbalance.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { VirtualClock, type Clock, type SimEngine } from '../../src/sim/sim.js';
import { LOAD_PUSH_RECENT_MS } from '../../src/transport/transport.js';
import { defaultExtensions } from '../../src/spi/extensions.js';
import { createInvocation, type Invocation } from '../../src/call/invocation.js';
import { engineFor, recordOf, type WorkerSpec } from './fleet.js';
import { random, type WorkItem } from './workloads.js';

/** The SLO of "goodput": a request counts if its TTFT and its mean inter-token gap meet these. */
export const SLO = { ttftMs: 2000, itlMs: 50 };

/** What one run measured. */
export interface RunResult {
  ttft: number[];
  /** When each request of `ttft` (same order) was issued, ms since the start. */
  startedAt: number[];
  /** Mean inter-token gap of each completed request, ms. */
  itl: number[];
  completed: number;
  shed: number;
  good: number;
  outputTokens: number;
  durationMs: number;
  promptTokens: number;
  cachedTokens: number;
  /** Requests served per worker. */
  perWorker: number[];
}

/** How to run: the fleet, the consumers, the seed of the balancers' chance, the clock. */
export interface SimulateOptions {
  readonly fleet: readonly WorkerSpec[];
  /** Independent consumers (gateways), each with its own balancer and counts; arrivals alternate between them. */
  readonly consumers?: number;
  readonly seed?: number;
  /** The virtual clock by default; the real one for the agreement check. */
  readonly clock?: Clock;
  /** Workers answer with their load attached (piggybacked), not only on the registry's 500 ms channel. */
  readonly piggyback?: boolean;
  /**
   * Workers send their load every this many ms to each consumer whose connection carried a
   * request, a token or an answer within LOAD_PUSH_RECENT_MS, as the tcp transport's LOAD
   * frames between answers do (LOAD_PUSH_EVERY_MS). Unset: never.
   */
  readonly pushLoadMs?: number;
  /** Workers publish the summary of their prefix cache with their load (true by default). */
  readonly publishCache?: boolean;
  /**
   * Closed loop instead of timed arrivals: this many lanes, each taking the next session and
   * running its items one after another (as the demo's consumer does).
   */
  readonly concurrency?: number;
  /** How often workers report their load to the registry, ms (500 by default). */
  readonly loadIntervalMs?: number;
  /**
   * How often consumers read the registry, ms, as the file registry's poll does: each read
   * delivers the workers' latest reports, stamped with the time of the read (the file registry
   * stamps `receivedAt` when it reads the file). Unset: a report reaches the consumers the
   * moment it is made (the registries that push, such as etcd's watch).
   */
  readonly registryPollMs?: number;
  /** The workers' addresses as the consumers see them (rendezvous hashing depends on them); 10.0.0.i:8000 by default. */
  readonly addresses?: readonly string[];
  /** The prompts' KV block hashes (memoised by the caller across runs of one workload). */
  readonly blocks?: (prompt: string) => readonly number[];
}

/** `weighted-round-robin` is round-robin over records weighted by slots; every other name is a built-in balancer. */
function balancerFor(policy: string, clock: Clock, seed: number): { balancer: LoadBalancer; slotWeighted: boolean } {
  const slotWeighted = policy === 'weighted-round-robin';
  const type = slotWeighted ? 'round-robin' : policy;
  const options = { clock, random: random(seed), ...(slotWeighted ? { warmupMs: 0 } : {}) };
  return { balancer: defaultExtensions().loadbalance.create({ type, options }), slotWeighted };
}

type SimView = ProviderView & { instance: ServiceInstance; stats: LiveProviderStats };

/**
 * Replays `items` against simulated engines through real balancers, on a clock (virtual for
 * the benchmark, real for the agreement check). Every consumer has its own balancer and its own
 * counts of what it has in flight; all read the same registry records, refreshed every 500 ms
 * (the registry load channel) and stamped on the same clock the balancers read. A worker
 * accepts at most 4x its slots at once; a refused call is tried once more elsewhere
 * (failover's rule for RESOURCE_EXHAUSTED), then counted as shed.
 */
export async function simulate(policy: string, items: readonly WorkItem[], options: SimulateOptions): Promise<RunResult> {
  const virtual = options.clock === undefined ? new VirtualClock(64) : undefined;
  const clock: Clock = options.clock ?? virtual!;
  const engines = options.fleet.map((spec) => engineFor(spec, clock));
  const inFlight = new Array<number>(engines.length).fill(0);
  const seed = options.seed ?? 1;
  const blocks = options.blocks ?? ((prompt: string) => prefixBlockHashes(prompt, 64, 4096));
  const consumers = Array.from({ length: options.consumers ?? 1 }, (_, k) => {
    const { balancer, slotWeighted } = balancerFor(policy, clock, seed * 7919 + k);
    const views: SimView[] = engines.map((engine, i) => ({
      instance: recordOf(i, engine, 0, clock.now(), slotWeighted),
      address: options.addresses?.[i] ?? `10.0.0.${i}:8000`,
      stats: new LiveProviderStats(),
    }));
    // When this consumer's connection to each worker last carried a request, a token or an
    // answer: workers push their load to it while that is recent.
    const trafficAt = new Array<number>(engines.length).fill(Number.NEGATIVE_INFINITY);
    return { balancer, views, slotWeighted, trafficAt };
  });
  const result: RunResult = {
    ttft: [],
    startedAt: [],
    itl: [],
    completed: 0,
    shed: 0,
    good: 0,
    outputTokens: 0,
    durationMs: 0,
    promptTokens: 0,
    cachedTokens: 0,
    perWorker: new Array(engines.length).fill(0),
  };
  let done = false;
  const start = clock.now();

  // The latest report of each worker (per consumer view: slot-weighted records differ only in weight).
  const reports = consumers.map((consumer) => consumer.views.map((view) => view.instance));
  const report = (): void => {
    for (const [k, consumer] of consumers.entries())
      for (let i = 0; i < engines.length; i++)
        reports[k]![i] = recordOf(i, engines[i]!, inFlight[i]!, clock.now(), consumer.slotWeighted, options.publishCache);
  };
  const deliver = (): void => {
    for (const [k, consumer] of consumers.entries()) {
      for (let i = 0; i < engines.length; i++) {
        const view = consumer.views[i]!;
        const reported = reports[k]![i]!;
        view.instance = { ...reported, load: { ...reported.load!, receivedAt: clock.now() } };
        view.stats.observeLoad(view.instance.load);
      }
    }
  };
  const every = async (ms: number, tick: () => void): Promise<void> => {
    while (!done) {
      await clock.sleep(ms);
      tick();
    }
  };
  const push = (): void => {
    for (const consumer of consumers)
      for (let i = 0; i < engines.length; i++)
        if (clock.now() - consumer.trafficAt[i]! <= LOAD_PUSH_RECENT_MS)
          publishTo(consumer.views[i]!, recordOf(i, engines[i]!, inFlight[i]!, clock.now(), consumer.slotWeighted, options.publishCache));
  };
  const refresh = async (): Promise<void> => {
    const poll = options.registryPollMs;
    const pushing = options.pushLoadMs === undefined ? undefined : every(options.pushLoadMs, push);
    if (poll === undefined) await every(options.loadIntervalMs ?? 500, () => (report(), deliver()));
    else await Promise.all([every(options.loadIntervalMs ?? 500, report), every(poll, deliver)]);
    await pushing;
  };

  const serve = async (item: WorkItem, consumer: (typeof consumers)[number]): Promise<void> => {
    const invocation: Invocation = createInvocation({ service: 'inference.LLM', method: 'generate', request: item, stream: true, routingKey: item.prompt });
    const { balancer, views } = consumer;
    let decision = balancer.select(views, invocation);
    let chosen = views.indexOf(decision.provider as SimView);
    if (inFlight[chosen]! >= engines[chosen]!.config.slots * 4) {
      decision = balancer.select(
        views.filter((_, i) => i !== chosen),
        invocation,
      );
      chosen = views.indexOf(decision.provider as SimView);
      if (inFlight[chosen]! >= engines[chosen]!.config.slots * 4) {
        result.shed++;
        return;
      }
    }
    const promptTokens = Math.ceil(item.prompt.length / 4);
    // Counted in flight as the client counts them: the tokens the balancer expects prefilled, else the prompt.
    const tokens = decision.uncachedTokens ?? promptTokens;
    const view = views[chosen]!;
    view.stats.start(tokens);
    inFlight[chosen]!++;
    result.perWorker[chosen]!++;
    const began = clock.now();
    consumer.trafficAt[chosen] = began;
    const usage = await run(engines[chosen]!, item, promptTokens, blocks(item.prompt), clock, () => (consumer.trafficAt[chosen] = clock.now()));
    inFlight[chosen]!--;
    const ended = clock.now();
    consumer.trafficAt[chosen] = ended;
    // The run is simulated whole: its prompt stops counting as prefilling when it ends.
    view.stats.end(tokens, ended - began, ended, false);
    if (options.piggyback === true) publishTo(view, recordOf(chosen, engines[chosen]!, inFlight[chosen]!, ended, consumer.slotWeighted, options.publishCache));
    balancer.observe?.({ invocation, address: view.address, firstAnswerMs: usage.first, totalMs: ended - began });
    result.promptTokens += usage.promptTokens;
    result.cachedTokens += usage.cachedTokens;
    result.outputTokens += usage.outputTokens;
    result.completed++;
    result.ttft.push(usage.first);
    result.startedAt.push(began - start);
    result.itl.push(usage.meanGap);
    if (usage.first <= SLO.ttftMs && usage.meanGap <= SLO.itlMs) result.good++;
  };

  const driver = (
    options.concurrency === undefined ? openLoop(items, clock, start, serve, consumers) : closedLoop(items, options.concurrency, serve, consumers)
  ).then(() => {
    done = true;
  });
  const refreshing = refresh();
  if (virtual !== undefined) await virtual.run();
  await driver;
  await refreshing;
  result.durationMs = clock.now() - start;
  return result;
}

/** Issues each item at its arrival time, consumers in turn; resolves when all are served. */
async function openLoop<C>(
  items: readonly WorkItem[],
  clock: Clock,
  start: number,
  serve: (item: WorkItem, consumer: C) => Promise<void>,
  consumers: readonly C[],
): Promise<void> {
  const requests: Promise<void>[] = [];
  for (let n = 0; n < items.length; n++) {
    const item = items[n]!;
    const wait = start + item.at - clock.now();
    if (wait > 0) await clock.sleep(wait);
    requests.push(serve(item, consumers[n % consumers.length]!));
  }
  await Promise.all(requests);
}

/** `concurrency` lanes, each running whole sessions (their items in order), consumers in turn. */
async function closedLoop<C>(
  items: readonly WorkItem[],
  concurrency: number,
  serve: (item: WorkItem, consumer: C) => Promise<void>,
  consumers: readonly C[],
): Promise<void> {
  const sessions = new Map<number, WorkItem[]>();
  for (const item of items) sessions.set(item.session ?? 0, [...(sessions.get(item.session ?? 0) ?? []), item]);
  const queue = [...sessions.values()];
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let session = queue.shift(); session !== undefined; session = queue.shift()) {
        for (const item of session) await serve(item, consumers[n++ % consumers.length]!);
      }
    }),
  );
}

/** A worker's answer carrying its load: the consumer keeps it as its freshest signal. */
function publishTo(view: SimView, record: ServiceInstance): void {
  view.stats.observeAnswerLoad(record.load!);
}

/** Streams one generation; its TTFT and mean gap on `clock`, and the engine's usage. */
async function run(
  engine: SimEngine,
  item: WorkItem,
  tokens: number,
  promptBlocks: readonly number[],
  clock: Clock,
  onToken: () => void,
): Promise<{ first: number; meanGap: number; promptTokens: number; cachedTokens: number; outputTokens: number }> {
  const generation = engine.generate({ promptTokens: tokens, promptBlocks, maxTokens: item.maxTokens });
  const began = clock.now();
  let first = -1;
  let last = began;
  let gaps = 0;
  let outputTokens = 0;
  for (;;) {
    const step = await generation.next();
    const now = clock.now();
    if (step.done === true) {
      const meanGap = outputTokens > 1 ? gaps / (outputTokens - 1) : 0;
      return { first, meanGap, promptTokens: step.value.promptTokens, cachedTokens: step.value.cachedTokens, outputTokens };
    }
    onToken();
    if (first < 0) first = now - began;
    else gaps += now - last;
    last = now;
    outputTokens++;
  }
}
