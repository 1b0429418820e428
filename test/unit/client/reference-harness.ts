import { ConnectionPool } from '../../../src/client/connection-pool.js';
import { Directory } from '../../../src/client/directory.js';
import { ProviderStatsTable } from '../../../src/client/provider-stats.js';
import { routingKeyExtractor } from '../../../src/client/routing-key.js';
import { ServiceReference, type ServiceReferenceParts } from '../../../src/client/service-reference.js';
import type { Invocation } from '../../../src/call/invocation.js';
import type { ClusterCall, ClusterStrategy } from '../../../src/cluster/cluster.js';
import { ProviderHealth } from '../../../src/cluster/provider-health.js';
import { RetryBudget } from '../../../src/cluster/retry-budget.js';
import type { CallOutcome, LoadBalancer, ProviderView, RouteDecision } from '../../../src/loadbalance/loadbalance.js';
import type { AttemptEvent, RouteEvent } from '../../../src/metrics/reports.js';
import { MemoryRegistry } from '../../../src/registry/memory.js';
import type { ServiceInstance } from '../../../src/registry/registry.js';
import { FAKE_CONNECT_OPTIONS, fakeTransport, NO_SERIALIZER, type FakeTransport } from '../../helpers/fake-transport.js';

/**
 * A ServiceReference wired to real cheap parts (an in-process registry, directory, pool,
 * stats, health without breakers, retry budget) and to a fake transport, balancer and cluster
 * strategy that record what they are handed.
 */
export interface ReferenceHarness {
  readonly reference: ServiceReference;
  readonly registry: MemoryRegistry;
  readonly directory: Directory;
  readonly transport: FakeTransport;
  readonly pool: ConnectionPool;
  readonly stats: ProviderStatsTable;
  readonly budget: RetryBudget;
  /** Every call handed to the cluster strategy. */
  readonly clusterCalls: ClusterCall[];
  /** Every `select` of the balancer: the candidates and the invocation. */
  readonly picks: Array<{ providers: readonly ProviderView[]; invocation: Invocation }>;
  readonly observed: CallOutcome[];
  readonly routes: RouteEvent[];
  readonly attempts: AttemptEvent[];
  /** Makes the reference's client count as closed. */
  close(): void;
}

export interface HarnessOptions {
  /** Registered before the reference is made. */
  readonly providers?: readonly ServiceInstance[];
  /** The balancer's choice; the first candidate by default. */
  readonly pick?: (providers: readonly ProviderView[]) => Omit<RouteDecision, 'policy'>;
  /** The strategy's behaviour; by default one attempt on the balancer's pick. */
  readonly invoke?: (call: ClusterCall) => Promise<unknown>;
  /** Overrides of the reference's parts. */
  readonly parts?: Partial<ServiceReferenceParts>;
  /** The consumer's transport name. */
  readonly protocol?: string;
}

export async function referenceHarness(options: HarnessOptions = {}): Promise<ReferenceHarness> {
  const registry = new MemoryRegistry();
  for (const provider of options.providers ?? []) await registry.register(provider);
  const transport = fakeTransport(options.protocol ?? 'tcp');
  const pool = new ConnectionPool(transport, FAKE_CONNECT_OPTIONS);
  const parts = options.parts ?? {};
  const directory = new Directory(
    registry,
    { service: parts.service ?? 'test.Echo', version: parts.version ?? '1.0.0', group: parts.group ?? '' },
    pool.protocol,
    () => {},
  );
  const stats = new ProviderStatsTable();
  const budget = new RetryBudget();
  const clusterCalls: ClusterCall[] = [];
  const picks: ReferenceHarness['picks'] = [];
  const observed: CallOutcome[] = [];
  const routes: RouteEvent[] = [];
  const attempts: AttemptEvent[] = [];
  const pick = options.pick ?? ((providers) => ({ provider: providers[0]!, branch: 'pick' }));
  const balancer: LoadBalancer = {
    name: 'recording',
    select(providers, invocation) {
      picks.push({ providers, invocation });
      return { policy: 'recording', ...pick(providers) };
    },
    observe: (outcome) => void observed.push(outcome),
  };
  const invoke = options.invoke ?? ((call) => call.send(call.select()!));
  const cluster: ClusterStrategy = {
    name: 'recording',
    invoke(call) {
      clusterCalls.push(call);
      return invoke(call);
    },
  };
  let closed = false;
  const reference = new ServiceReference({
    service: 'test.Echo',
    version: '1.0.0',
    group: '',
    timeoutMs: 30_000,
    serializer: NO_SERIALIZER,
    balancer,
    cluster,
    filters: [],
    directory,
    pool,
    stats,
    health: new ProviderHealth(undefined, undefined),
    maxCallsPerProvider: 1000,
    urgentPriority: 5,
    budget,
    retries: undefined,
    mock: undefined,
    routingKey: routingKeyExtractor(undefined, 'routingKey'),
    onRoute: (event) => void routes.push(event),
    onAttempt: (event) => void attempts.push(event),
    isClosed: () => closed,
    ...parts,
  });
  return { reference, registry, directory, transport, pool, stats, budget, clusterCalls, picks, observed, routes, attempts, close: () => (closed = true) };
}

/** A promise with its settle functions outside, for calls a test holds open. */
export function deferred<T = unknown>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
