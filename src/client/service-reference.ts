import { linkSignals } from '../common/abort-listeners.js';
import { RecentMap } from '../common/recent-map.js';
import { checkKnownKeys, MAX_TIMER_MS, optionKeys, show } from '../common/validate.js';
import { recordAttempt, type ClusterCall, type ClusterCandidate, type ClusterStrategy } from '../cluster/cluster.js';
import { isProviderFailure, type ProviderHealth } from '../cluster/provider-health.js';
import type { RetryBudget } from '../cluster/retry-budget.js';
import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { composeFilters, type Filter, type NextFilter } from '../filter/filter.js';
import { believedInstances, type Doubt } from '../loadbalance/believed.js';
import type { LoadBalancer, ProviderView, RouteDecision } from '../loadbalance/loadbalance.js';
import { leastPrefilling } from '../loadbalance/urgent.js';
import { withRoom } from '../loadbalance/weights.js';
import { callPriority } from '../inference/inference.js';
import type { AttemptEvent, RouteEvent } from '../metrics/reports.js';
import type { CallMode, CallOptions } from '../proxy/proxy.js';
import { currentCallScope } from '../call/call-scope.js';
import { createContextKey, createContextValues } from '../call/context-values.js';
import type { ServiceInstance } from '../registry/registry.js';
import type { Serializer } from '../serializer/serializer.js';
import type { ClientConnection } from '../transport/transport.js';
import type { Invocation, Metadata } from '../call/invocation.js';
import type { ConnectionPool } from './connection-pool.js';
import type { Directory } from './directory.js';
import { applyMock, type ResolvedMock } from './mock.js';
import type { MethodKey } from './method-wait.js';
import type { LiveProviderStats, ProviderStatsTable } from './provider-stats.js';
import { withoutDraining } from './draining.js';
import { withoutStalled } from './stalled.js';
import { monotonicNow } from '../common/clock.js';
import { raceCallLimits } from '../transport/call-limits.js';
import { settleQuietly } from '../common/observers.js';
import { HELD, HeldCalls } from './held-calls.js';

/** Everything one reference (service + version + group, with its defaults) needs to call. */
export interface ServiceReferenceParts {
  readonly service: string;
  readonly version: string;
  readonly group: string;
  readonly timeoutMs: number;
  readonly serializer: Serializer;
  readonly balancer: LoadBalancer;
  readonly cluster: ClusterStrategy;
  /** Consumer filters, already ordered. */
  readonly filters: readonly Filter[];
  readonly directory: Directory;
  readonly pool: ConnectionPool;
  readonly stats: ProviderStatsTable;
  readonly health: ProviderHealth;
  readonly maxCallsPerProvider: number;
  /**
   * Calls whose priority (`shuttle-priority` metadata) is at least this choose among the
   * providers with the fewest prompts awaiting their first answer; undefined: no such rule.
   */
  readonly urgentPriority: number | undefined;
  readonly budget: RetryBudget;
  /** The reference's `retries` option, if set. */
  readonly retries: number | undefined;
  readonly mock: ResolvedMock | undefined;
  /** Extracts the routing key from a request when the call gives none. */
  readonly routingKey: (request: unknown) => string | undefined;
  /** The reference's `waitForReady` (a call's own option overrides it). */
  readonly waitForReady?: boolean;
  readonly onRoute: ((event: RouteEvent) => void) | undefined;
  readonly onAttempt?: ((event: AttemptEvent) => void) | undefined;
  /** Told of a stream that broke off after it opened (see ClientOptions.onStreamBreak). */
  readonly onStreamBreak?: ((event: AttemptEvent) => void) | undefined;
  /** Told of each provider figure the balancer is not given as claimed (believed.ts), at each registry snapshot. */
  readonly onDoubt?: ((doubt: Doubt) => void) | undefined;
  readonly isClosed: () => boolean;
}

/** Route objects kept per generation (see RecentMap): far more than any service has methods. */
const MAX_CACHED_ROUTES = 1024;

const CALL_OPTION_KEYS = optionKeys<CallOptions>()(['timeoutMs', 'signal', 'metadata', 'oneWay', 'routingKey', 'waitForReady']);
const NO_META: Metadata = Object.freeze({}) as Metadata;
/** The call as the reference made it, for the end of the filter chain. */
const MADE = createContextKey<Invocation | undefined>(undefined, 'shuttle-rpc consumer call');
/** Set on calls that wait for a provider to be listed when none is (`waitForReady`). */
const WAIT_FOR_READY = createContextKey(false, 'shuttle-rpc waitForReady');

/**
 * The consumer-side path of one call: validate the per-call options, run the consumer
 * filters, then let the cluster strategy pick providers (through the load balancer) and send.
 */
export class ServiceReference {
  readonly #parts: ServiceReferenceParts;
  readonly #chain: NextFilter | undefined;
  /** Ends calls the filters hold past their deadline or abort; only when there are filters. */
  readonly #held: HeldCalls | undefined;
  /**
   * One stable object per method name: the transports' cache key for the route. Bounded as the
   * proxy's functions are: a call names any method, and is refused UNIMPLEMENTED only after this.
   */
  readonly #routes = new RecentMap<string, object>(MAX_CACHED_ROUTES);
  /**
   * The release of the signal link #invocation made for the call being started, handed over
   * at once by call(): a field rather than an object per call, as every unary call passes here.
   */
  #linkRelease: (() => void) | undefined;
  /** Balancer views of the list of providers the last call was given (one field compare per call). */
  #views: { providers: readonly ServiceInstance[]; views: readonly LiveView[] } | undefined;
  /**
   * Views of every list handed out, keyed by the directory's own lists, which it replaces at each
   * snapshot (old entries go with them): while providers list different methods, each method has
   * its list, and calls alternating between methods find theirs here.
   */
  readonly #viewsByList = new WeakMap<readonly ServiceInstance[], readonly LiveView[]>();

  constructor(parts: ServiceReferenceParts) {
    this.#parts = parts;
    this.#held = parts.filters.length === 0 ? undefined : new HeldCalls(parts.filters.map((filter) => String(filter.name)));
    this.#chain =
      parts.filters.length === 0
        ? undefined
        : composeFilters(parts.filters, (filtered) => {
            const made = filtered.values?.get(MADE);
            if (made === undefined) {
              return Promise.reject(
                new RpcError(RpcCode.INTERNAL, `a consumer filter of ${parts.service} passed on an invocation not copied from the one it got`),
              );
            }
            if (filtered.service !== made.service || filtered.version !== made.version || filtered.method !== made.method || filtered.stream !== made.stream) {
              return Promise.reject(
                new RpcError(
                  RpcCode.INTERNAL,
                  `a consumer filter of ${made.service}.${made.method} changed the call's service, version, method or mode; only its request, metadata and deadline may change`,
                ),
              );
            }
            const held = filtered.values.get(HELD);
            if (held !== undefined) {
              // A filter that calls next again would send the call again: a second execution of a
              // method that may not be idempotent, which the cluster strategy never does unasked.
              if (held.passedOn) {
                return Promise.reject(
                  new RpcError(
                    RpcCode.INTERNAL,
                    `a consumer filter of ${made.service}.${made.method} (${parts.filters.map((filter) => filter.name).join(', ')}) called next a second time; a filter passes a call on at most once`,
                  ),
                );
              }
              held.passedOn = true;
            }
            // A spread copy is the whole call, sent as it is; an object a filter built from the
            // filters' fields takes the rest from the call it was given.
            const call =
              'route' in filtered
                ? (filtered as Invocation)
                : { ...made, request: filtered.request, metadata: filtered.metadata as Metadata, deadline: filtered.deadline };
            return this.#dispatch(call);
          });
  }

  /**
   * Makes one call: resolves with the result (unary) or with the open stream (`mode` stream).
   * Never throws synchronously: every failure is a rejected promise.
   */
  call(method: string, request: unknown, options: CallOptions | undefined, mode: CallMode = 'unary'): Promise<unknown> {
    const parts = this.#parts;
    let invocation: Invocation;
    let release: (() => void) | undefined;
    try {
      if (parts.isClosed()) throw new RpcError(RpcCode.UNAVAILABLE, 'client is closed', { details: { neverSent: true } });
      invocation = this.#invocation(method, request, options, mode === 'stream');
      // Set by #invocation just now (synchronously) when it linked two signals.
      release = this.#linkRelease;
      this.#linkRelease = undefined;
      if (invocation.signal?.aborted) {
        throw new RpcError(RpcCode.CANCELLED, `${parts.service}.${method} was cancelled before it was sent`, { cause: invocation.signal.reason });
      }
    } catch (error) {
      (release ?? this.#linkRelease)?.();
      this.#linkRelease = undefined;
      return Promise.reject(error);
    }
    const result =
      parts.mock !== undefined && !invocation.stream ? applyMock(parts.mock, invocation, () => this.#filtered(invocation)) : this.#filtered(invocation);
    if (release !== undefined) releaseWhenOver(result, invocation.stream, release);
    return result;
  }

  /** The call goes through the filters as it is: the filters' view of a call is part of it. */
  #filtered(invocation: Invocation): Promise<unknown> {
    if (this.#chain === undefined) return this.#dispatch(invocation);
    invocation.values.set(MADE, invocation);
    return this.#held!.watch(invocation, this.#chain);
  }

  #dispatch(invocation: Invocation): Promise<unknown> {
    // The first call waits for the directory's first snapshot, within its deadline and abort (a
    // registry whose subscribe never answers must not hold it for good); later calls skip the await.
    if (!this.#parts.directory.isReady) {
      return raceCallLimits(this.#parts.directory.ready(), invocation, '', "waiting for the registry's first list of providers").then(() =>
        this.#cluster(invocation),
      );
    }
    return this.#cluster(invocation);
  }

  #cluster(invocation: Invocation): Promise<unknown> {
    const parts = this.#parts;
    const providers = parts.directory.eligibleFor(invocation.method);
    if (providers.length === 0) {
      return invocation.values.get(WAIT_FOR_READY) ? this.#waitForProvider(invocation) : this.#noProvider(invocation).then((error) => Promise.reject(error));
    }
    let result: unknown;
    try {
      result = parts.cluster.invoke(new Attempt(parts, invocation, this.#viewsOf(providers)));
    } catch (error) {
      return Promise.reject(error);
    }
    // A plugin's strategy is held to returning a promise: the filters and the proxy chain on it.
    if (result instanceof Promise) return result;
    const name = typeof parts.cluster.name === 'string' ? parts.cluster.name : '(unnamed)';
    return Promise.reject(
      new RpcError(
        RpcCode.INTERNAL,
        `cluster strategy "${name}" returned ${result === null ? 'null' : typeof result} instead of a promise (${invocation.service}.${invocation.method})`,
      ),
    );
  }

  /** Why no provider is listed for the call: UNIMPLEMENTED or UNAVAILABLE, never sent. */
  async #noProvider(invocation: Invocation): Promise<RpcError> {
    const parts = this.#parts;
    const directory = parts.directory;
    if (directory.eligible.length > 0) {
      const count = directory.eligible.length;
      return new RpcError(
        RpcCode.UNIMPLEMENTED,
        `no provider of ${describe(parts)} exports method "${invocation.method}" (${count === 1 ? 'its provider does not list it' : `none of its ${count} providers lists it`})`,
        { details: { neverSent: true } },
      );
    }
    const draining = directory.instances.length;
    const others = directory.otherProtocols;
    const why =
      draining > 0
        ? `is available (${draining} draining)`
        : others.length > 0
          ? `speaks this client's transport (${parts.pool.protocol}); registered providers speak ${others.join(', ')}`
          : 'is registered';
    let more = '';
    if (draining === 0 && others.length === 0) {
      // The classic slip: the service runs, under another version or group than asked for.
      const variants = await directory.registeredVariants();
      if (variants.length > 0) more = `; ${parts.service} is registered under ${variants.join(', ')}`;
    }
    return new RpcError(RpcCode.UNAVAILABLE, `no provider of ${describe(parts)} ${why}${more}`, { details: { neverSent: true } });
  }

  /**
   * A `waitForReady` call with no provider listed: waits for the directory to change, then
   * tries again, until its deadline (DEADLINE_EXCEEDED saying what it waited for), its signal
   * (CANCELLED) or the client's close. Every waiting call of a directory shares one promise of
   * its next change; each has its own timer.
   */
  async #waitForProvider(invocation: Invocation): Promise<unknown> {
    const parts = this.#parts;
    const { signal, deadline } = invocation;
    const waitedFrom = monotonicNow();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<RpcError>((resolve) => {
      timer = setTimeout(
        () => {
          void this.#noProvider(invocation).then((why) =>
            resolve(
              new RpcError(RpcCode.DEADLINE_EXCEEDED, `${why.rawMessage} (waited ${Math.round(monotonicNow() - waitedFrom)} ms for one: waitForReady)`, {
                details: { neverSent: true },
              }),
            ),
          );
        },
        // A filter may have taken the deadline off; the wait still has the reference's bound.
        Math.min(MAX_TIMER_MS, Math.max(0, (deadline ?? waitedFrom + parts.timeoutMs) - monotonicNow())),
      );
      if (signal !== undefined) {
        onAbort = () =>
          resolve(
            new RpcError(RpcCode.CANCELLED, `${parts.service}.${invocation.method} was cancelled while it waited for a provider`, { cause: signal.reason }),
          );
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      for (;;) {
        const stopped = await Promise.race([stop, parts.directory.changed()]);
        if (stopped !== undefined) throw stopped;
        if (parts.isClosed()) throw new RpcError(RpcCode.UNAVAILABLE, 'client is closed', { details: { neverSent: true } });
        if (parts.directory.eligibleFor(invocation.method).length > 0) break;
      }
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
    return this.#cluster(invocation);
  }

  /**
   * Views of `providers` for the balancer, cached per list the directory hands out (no per-call
   * allocation): one list per snapshot, or one per method while providers list different
   * methods (a rolling upgrade), so calls alternating between methods do not rebuild them.
   */
  #viewsOf(providers: readonly ServiceInstance[]): readonly LiveView[] {
    if (this.#views?.providers === providers) return this.#views.views;
    const cached = this.#viewsByList.get(providers);
    if (cached !== undefined) {
      this.#views = { providers, views: cached };
      return cached;
    }
    const stats = this.#parts.stats;
    // The records as the balancer may believe them: a figure that is no number, or wildly past
    // the fleet's, is replaced once per snapshot, so no balancer divides by 1e308 slots.
    const views = believedInstances(providers, this.#parts.onDoubt).map((instance) => {
      const address = `${instance.host}:${instance.port}`;
      const live = stats.get(address);
      live.observeLoad(instance.load);
      return new LiveView(instance, address, live);
    });
    this.#viewsByList.set(providers, views);
    this.#views = { providers, views };
    return views;
  }

  /** The call's invocation; sets #linkRelease when its signal is linked to the served call's and must be released when the call is over. */
  #invocation(method: string, request: unknown, options: CallOptions | undefined, stream: boolean): Invocation {
    const parts = this.#parts;
    let timeoutMs = parts.timeoutMs;
    let signal: AbortSignal | undefined;
    let metadata = NO_META;
    let oneWay = false;
    let routingKey: string | undefined;
    let waitForReady = parts.waitForReady === true;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw new RpcError(
          RpcCode.INVALID_ARGUMENT,
          `call options of ${parts.service}.${method} must be an object, got ${options === null ? 'null' : typeof options}`,
        );
      }
      try {
        checkKnownKeys(`call options of ${parts.service}.${method}`, options, CALL_OPTION_KEYS);
      } catch (error) {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, (error as Error).message);
      }
      if (options.timeoutMs !== undefined) {
        if (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1 || options.timeoutMs > MAX_TIMER_MS) {
          throw new RpcError(
            RpcCode.INVALID_ARGUMENT,
            `timeoutMs of ${parts.service}.${method} must be an integer from 1 to ${MAX_TIMER_MS}, got ${show(options.timeoutMs)}`,
          );
        }
        timeoutMs = options.timeoutMs;
      }
      if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `signal of ${parts.service}.${method} must be an AbortSignal`);
      }
      signal = options.signal;
      if (options.metadata !== undefined) {
        if (options.metadata === null || typeof options.metadata !== 'object') {
          throw new RpcError(RpcCode.INVALID_ARGUMENT, `metadata of ${parts.service}.${method} must be an object of strings`);
        }
        metadata = options.metadata;
      }
      if (options.oneWay !== undefined && typeof options.oneWay !== 'boolean') {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `oneWay of ${parts.service}.${method} must be true or false`);
      }
      oneWay = options.oneWay === true;
      if (oneWay && stream) throw new RpcError(RpcCode.INVALID_ARGUMENT, `${parts.service}.${method}: a streaming call cannot be one-way`);
      if (options.routingKey !== undefined && typeof options.routingKey !== 'string') {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `routingKey of ${parts.service}.${method} must be a string`);
      }
      routingKey = options.routingKey;
      if (options.waitForReady !== undefined && typeof options.waitForReady !== 'boolean') {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, `waitForReady of ${parts.service}.${method} must be true or false, got ${show(options.waitForReady)}`);
      }
      waitForReady = options.waitForReady ?? waitForReady;
    }
    routingKey ??= parts.routingKey(request);
    let deadline = monotonicNow() + timeoutMs;
    // Inside a provider's handler, a call inherits the remaining deadline and the cancellation
    // of the call being served (gRPC deadline propagation).
    const scope = currentCallScope();
    if (scope !== undefined) {
      if (scope.deadline !== undefined && scope.deadline < deadline) deadline = scope.deadline;
      if (signal === undefined) signal = scope.signal;
      else {
        const linked = linkSignals(signal, scope.signal);
        signal = linked.signal;
        this.#linkRelease = linked.release;
      }
    }
    let route = this.#routes.get(method);
    if (route === undefined) {
      route = {};
      this.#routes.set(method, route);
    }
    return {
      side: 'consumer',
      service: parts.service,
      version: parts.version,
      group: parts.group,
      method,
      request,
      metadata,
      deadline,
      signal,
      oneWay,
      stream,
      route,
      routingKey,
      peer: undefined,
      values: waitForReady ? createContextValues().set(WAIT_FOR_READY, true) : createContextValues(),
    };
  }
}

/**
 * A provider as the balancer and the cluster strategy see it, with the live statistics the
 * attempt updates: made once per directory snapshot, then handed from the balancer's pick to
 * the send without another lookup.
 */
class LiveView implements ProviderView, ClusterCandidate {
  constructor(
    readonly instance: ServiceInstance,
    readonly address: string,
    readonly stats: LiveProviderStats,
  ) {}
}

/**
 * The {@link ClusterCall} of one call. A class rather than an object literal with closures:
 * it is made for every call, and methods on a prototype cost nothing per call.
 */
class Attempt implements ClusterCall {
  #attempts = 0;
  /** The last decision's provider and the prompt tokens it expects that provider to prefill. */
  #decided: LiveView | undefined;
  #decidedTokens: number | undefined;
  /**
   * Whether the call is urgent (see {@link ServiceReferenceParts.urgentPriority}). Read once,
   * here: `select` also runs in the strategies' timers (a hedge, a background retry), where
   * nothing should touch the caller's metadata again.
   */
  readonly #urgent: boolean;
  /** The method's key in the providers' statistics: the stall rule judges each method by its own calls. */
  readonly #method: MethodKey;

  /** `providers`: the views of the eligible providers, which the strategy hands back to `send`. */
  constructor(
    private readonly parts: ServiceReferenceParts,
    readonly invocation: Invocation,
    readonly providers: readonly LiveView[],
  ) {
    this.#urgent = parts.urgentPriority !== undefined && providers.length > 1 && callPriority(invocation.metadata) >= parts.urgentPriority;
    this.#method = parts.stats.methodKey(invocation.service, invocation.method);
  }

  get stream(): boolean {
    return this.invocation.stream;
  }

  get idempotent(): boolean {
    const method = this.invocation.method;
    return this.providers.some((provider) => provider.instance.methods.some((entry) => entry.name === method && entry.idempotent));
  }

  get budget(): RetryBudget {
    return this.parts.budget;
  }

  get retries(): number | undefined {
    return this.parts.retries;
  }

  refusing(provider: ClusterCandidate): boolean {
    return this.parts.health.refusing(provider.address);
  }

  select(excluded?: ReadonlySet<ClusterCandidate>): LiveView | undefined {
    const remaining = excluded === undefined || excluded.size === 0 ? this.providers : this.providers.filter((view) => !excluded.has(view));
    if (remaining.length === 0) return undefined;
    // Skip providers whose breaker is open or that are ejected, within the max-share rule.
    // Past the cap, the providers picked again get their share of the calls and no more.
    let candidates = this.parts.health.admit(remaining, (address) => this.parts.pool.isDown(address), this.invocation.method);
    // One candidate has nobody to be passed over for: no clock read then.
    if (candidates.length > 1) candidates = withoutStalled(withoutDraining(candidates), this.#method, monotonicNow());
    // A provider whose advertised limit this consumer's own calls fill would refuse the call at
    // once: passed over while another has room, whatever the balancer. The load-aware ones did
    // so already; `random` (the default) and `round-robin` sent it its share, and a call refused
    // there and retried (once, the overload rule) on another such provider failed
    // RESOURCE_EXHAUSTED while an idle provider had room.
    if (candidates.length > 1) candidates = withRoom(candidates);
    if (candidates.length > 1 && this.parts.pool.connectsFull) candidates = connectedOnly(candidates, this.parts.pool);
    if (this.#urgent && candidates.length > 1) candidates = this.#leastPrefilling(candidates);
    const decision = this.#decide(candidates);
    const picked = decision.provider as LiveView;
    this.#decided = picked;
    this.#decidedTokens = decision.uncachedTokens;
    this.#attempts++;
    if (this.parts.onRoute !== undefined) {
      try {
        this.parts.onRoute({ service: this.invocation.service, method: this.invocation.method, attempt: this.#attempts, decision });
      } catch {
        // An observer's bug must not fail the call it observes.
      }
    }
    return picked;
  }

  /**
   * The balancer's decision, held to its contract: a balancer is user code, and what it throws,
   * or a decision without one of the candidates it was given (a provider the breaker or the
   * cluster strategy ruled out, one of its own making), fails the call before anything is sent,
   * with an error naming the balancer, instead of a TypeError from deep in the attempt or a
   * request to a provider nobody chose.
   */
  #decide(candidates: readonly LiveView[]): RouteDecision {
    const balancer = this.parts.balancer;
    let decision: RouteDecision | undefined;
    try {
      decision = balancer.select(candidates, this.invocation);
    } catch (error) {
      throw this.#balancerFault(`threw: ${thrownMessage(error)}`, error);
    }
    // A balancer answers with one of the views it was given: a scan of a short list, no allocation.
    const provider = decision === null || typeof decision !== 'object' ? undefined : decision.provider;
    if (provider === undefined || !candidates.includes(provider as LiveView)) {
      throw this.#balancerFault(
        decision === null || typeof decision !== 'object'
          ? `returned ${decision === null ? 'null' : typeof decision} instead of a RouteDecision`
          : `chose a provider that is not one of the ${candidates.length} candidates it was given`,
      );
    }
    return decision!;
  }

  #balancerFault(what: string, cause?: unknown): RpcError {
    const name = typeof this.parts.balancer.name === 'string' ? this.parts.balancer.name : '(unnamed)';
    return new RpcError(RpcCode.INTERNAL, `load balancer "${name}" ${what} (${this.invocation.service}.${this.invocation.method})`, {
      cause,
      details: { neverSent: true, local: true },
    });
  }

  /**
   * An urgent call's candidates: of those with room under `maxCallsPerProvider` (a full one
   * would refuse it), the ones computing the fewest prompt tokens; all of them when none has room.
   */
  #leastPrefilling(candidates: readonly LiveView[]): readonly LiveView[] {
    const max = this.parts.maxCallsPerProvider;
    const open = candidates.every((view) => view.stats.inFlight < max) ? candidates : candidates.filter((view) => view.stats.inFlight < max);
    return open.length === 0 ? candidates : leastPrefilling(open);
  }

  /** Sends to the provider picked: its address and statistics come with it, not looked up again. */
  send(provider: ClusterCandidate, options?: { signal?: AbortSignal }): Promise<unknown> {
    const parts = this.parts;
    const address = provider.address;
    let connection: ClientConnection;
    try {
      connection = parts.pool.get(provider.instance.host, provider.instance.port, address);
    } catch (error) {
      // The pool is full of connections with calls in flight: refused here, never sent.
      return Promise.reject(error);
    }
    // A strategy hands back what it was given; a candidate of its own making is looked up.
    const stats = provider instanceof LiveView ? provider.stats : parts.stats.get(address);
    const decided = this.#decided === provider ? this.#decidedTokens : undefined;
    // A plugin balancer's estimate is kept to whole non-negative tokens: fractions would leave
    // the counts a hair above zero when every call has ended, and NaN would stick for good.
    const tokens = wholeTokens(decided ?? estimateTokens(this.invocation.routingKey));
    const method = this.invocation.method;
    const started = monotonicNow();
    let invocation = this.invocation;
    let release: (() => void) | undefined;
    if (options?.signal !== undefined) {
      if (invocation.signal === undefined) invocation = { ...invocation, signal: options.signal };
      else {
        const linked = linkSignals(invocation.signal, options.signal);
        release = linked.release;
        invocation = { ...invocation, signal: linked.signal };
      }
    }
    if (stats.inFlight >= parts.maxCallsPerProvider) {
      release?.();
      return Promise.reject(
        new RpcError(RpcCode.RESOURCE_EXHAUSTED, `this consumer already has ${stats.inFlight} calls in flight to ${address} (maxCallsPerProvider)`, {
          details: { neverSent: true, local: true },
        }),
      );
    }
    const key = this.#method;
    // The call's start time is the stall rule's too: no second clock read.
    stats.start(tokens, started, key);
    if (invocation.stream) {
      // The attempt is the stream's opening: it succeeds at the first chunk (or the end), and a
      // stream the provider fails before producing anything — an engine that answers 500, a
      // handler that throws at once — is a failed attempt for the breaker, ejection, the retry
      // budget and failover alike, as a failed unary call is. Failures after the first chunk
      // reach the reader.
      const health = parts.health;
      const record = health.record(address);
      // The breaker admits the attempt and times a half-open probe on the request's sending (a
      // probe must not wait for a first token that a long prompt takes seconds to compute);
      // the outcome it counts is the attempt's.
      const sent = settle(() =>
        health.guard(
          record,
          () => connection.openStream(invocation, parts.serializer),
          // Opened after its breaker probe had timed out: the caller has its error; stop the provider.
          (late) => void late[Symbol.asyncIterator]().return?.(),
        ),
      );
      const opened = sent.then((stream) => stream.firstEvent().then(() => stream));
      opened.then(
        (stream) => {
          const firstAt = monotonicNow();
          stats.answered(tokens, firstAt, key);
          // The provider's health and latency are judged by how the stream ends, not by its
          // opening: a worker whose generations all break after the first token (an engine
          // crashing mid-sequence) would otherwise count a success per stream, never be
          // ejected, and — its streams being short — draw the traffic of every load-minded
          // balancer. The reader's own cancel says nothing against it.
          stream.trailer.then(
            () => {
              health.succeeded(record, method);
              finish(stats, key, tokens, started, true, true, undefined, firstAt);
              this.#observe(address, started, firstAt);
            },
            (error: unknown) => {
              const broke = isProviderFailure(error);
              if (broke) health.failed(record, error, method);
              else health.succeeded(record, method);
              finish(stats, key, tokens, started, true, !broke, error, firstAt);
              if (!broke) this.#observe(address, started, firstAt);
            },
          );
        },
        (error: unknown) => {
          health.failed(record, error, method);
          finish(stats, key, tokens, started, false, false, error);
          if (answeredWithError(error)) this.#observe(address, started, undefined, true);
        },
      );
      if (parts.onAttempt !== undefined) this.#report(opened, address, started);
      if (parts.onStreamBreak !== undefined) {
        // A break after the opening (not the reader's own cancel), to its own hook: it is no
        // new attempt.
        opened.then(
          (stream) =>
            stream.trailer.catch((error: unknown) => {
              if (RpcError.from(error).code !== RpcCode.CANCELLED) this.#report(Promise.reject(error), address, started, true);
            }),
          () => {},
        );
      }
      if (release !== undefined) releaseWhenOver(opened, true, release);
      return opened.then(
        (stream) => {
          recordAttempt(parts.budget, false);
          return stream;
        },
        (error: unknown) => {
          recordAttempt(parts.budget, true, error);
          throw error;
        },
      );
    }
    const health = parts.health;
    const record = health.record(address);
    // A closed breaker is passed by without a closure for it to call.
    // A transport that throws instead of rejecting still ends the call's bookkeeping below.
    // (Inline rather than through settle(): no closure per unary call.)
    let result: Promise<unknown>;
    try {
      result = health.passes(record)
        ? connection.invoke(invocation, parts.serializer)
        : health.guard(record, () => connection.invoke(invocation, parts.serializer));
    } catch (error) {
      result = Promise.reject(error);
    }
    // One pair of handlers does all of a settled attempt's bookkeeping.
    result.then(
      () => {
        health.succeeded(record, method);
        finish(stats, key, tokens, started, false, true, undefined);
        recordAttempt(parts.budget, false);
        this.#observe(address, started);
      },
      (error: unknown) => {
        health.failed(record, error, method);
        finish(stats, key, tokens, started, false, false, error);
        recordAttempt(parts.budget, true, error);
        if (answeredWithError(error)) this.#observe(address, started, undefined, true);
      },
    );
    if (parts.onAttempt !== undefined) this.#report(result, address, started);
    if (release !== undefined) result.then(release, release);
    return result;
  }

  /**
   * Tells the balancer, if it learns, how long the answer took to start (`firstAt`; a unary
   * answer starts as it ends, now) and to end, and whether it was an error. The clock is read
   * only for a balancer that learns.
   */
  #observe(address: string, started: number, firstAt?: number, failed = false): void {
    const balancer = this.parts.balancer;
    if (balancer.observe === undefined) return;
    const now = monotonicNow();
    try {
      settleQuietly(balancer.observe({ invocation: this.invocation, address, firstAnswerMs: (firstAt ?? now) - started, totalMs: now - started, failed }));
    } catch {
      // A plugin balancer's bug must not fail the call it learns from.
    }
  }

  /** Tells the `onAttempt` hook how this attempt went (what the hook throws is ignored). */
  #report(outcome: Promise<unknown>, provider: string, started: number, midStream = false): void {
    const attempt = this.#attempts;
    const hook = midStream ? this.parts.onStreamBreak! : this.parts.onAttempt!;
    const report = (code: RpcCode): void => {
      try {
        hook({
          service: this.invocation.service,
          method: this.invocation.method,
          provider,
          attempt,
          code,
          seconds: (monotonicNow() - started) / 1000,
          ...(midStream ? { midStream } : {}),
        });
      } catch {
        // An observer's bug must not fail the call it observes.
      }
    };
    outcome.then(
      () => report(RpcCode.OK),
      (error: unknown) => report(RpcError.from(error).code),
    );
  }
}

/**
 * An attempt's end in its provider's statistics, under its `method`'s key; `answered`: whether its first answer was already
 * counted; `error`: why it failed, if it did. Only a successful attempt's time counts as the
 * provider's latency. An end is news from the provider unless this consumer ended the wait
 * itself (the deadline, a cancel): those are what a hung provider produces. `firstAt`: when a
 * stream's first chunk came (a unary call's first answer is its end).
 */
function finish(
  stats: LiveProviderStats,
  method: MethodKey,
  tokens: number,
  started: number,
  answered: boolean,
  succeeded: boolean,
  error: unknown,
  firstAt?: number,
): void {
  const now = monotonicNow();
  if (error === undefined || !endedHere(error)) stats.heard(now, method);
  else if (!answered) stats.gaveUp(started, now, method);
  if (error !== undefined && answeredWithError(error)) stats.failedAnswer(now);
  stats.end(tokens, now - started, now, answered, succeeded, method, (firstAt ?? now) - started);
}

/**
 * Whether a failed attempt was the provider's own error answer saying it could not serve the
 * call — its failure, an UNIMPLEMENTED from a worker listed as serving the method (misdeployed),
 * an overload refusal — and not the consumer ending the wait, a refusal by its breaker or this
 * consumer's own limit, a connection that never carried the request, or the application's
 * answer about the request (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED…, which a healthy
 * worker gives as fast as a broken one and which say nothing about the worker). Such answers
 * count in the load signal as failed calls and teach a learning balancer the worker is slow.
 */
function answeredWithError(error: unknown): boolean {
  if (endedHere(error)) return false;
  const failure = error as { code?: unknown; details?: Record<string, unknown> } | undefined;
  if (failure?.details?.['breakerOpen'] === true || failure?.details?.['local'] === true) return false;
  if (failure?.details?.['neverSent'] === true && failure.code === RpcCode.UNAVAILABLE) return false;
  return isProviderFailure(error) || failure?.code === RpcCode.UNIMPLEMENTED || failure?.code === RpcCode.RESOURCE_EXHAUSTED;
}

/** Whether a failure is the consumer's own end of the wait (deadline or cancel) rather than an answer. */
function endedHere(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === RpcCode.DEADLINE_EXCEEDED || code === RpcCode.CANCELLED;
}

/** `value` as whole non-negative tokens: 0 for anything that is not a positive finite number. */
function wholeTokens(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.ceil(value) : 0;
}

/** What `open` returns, or its synchronous throw as a rejection. */
function settle<T>(open: () => Promise<T>): Promise<T> {
  try {
    return open();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Prompt tokens of a call, estimated from its routing key (about 4 characters a token). */
function estimateTokens(routingKey: string | undefined): number {
  return routingKey === undefined ? 0 : Math.ceil(routingKey.length / 4);
}

function describe(parts: ServiceReferenceParts): string {
  return `${parts.service}${parts.version ? `:${parts.version}` : ''}${parts.group ? ` (group ${parts.group})` : ''}`;
}

/**
 * Calls `release` once the call of `result` is over: a unary call when it settles, a stream
 * when its trailer does (or when it fails to open).
 */
function releaseWhenOver(result: Promise<unknown>, stream: boolean, release: () => void): void {
  if (!stream) {
    result.then(release, release);
    return;
  }
  result.then((open: unknown) => {
    const trailer = (open as { trailer?: unknown } | null)?.trailer;
    if (trailer instanceof Promise) trailer.then(release, release);
    else release();
  }, release);
}

/**
 * The candidates whose connection is ready, when there are any; all of them otherwise. Used
 * while every connect slot is taken: a call is not queued behind connects to addresses that
 * may never answer when a provider already connected can take it.
 */
function connectedOnly<T extends { readonly address: string }>(candidates: readonly T[], pool: ConnectionPool): readonly T[] {
  const ready = candidates.filter((candidate) => pool.state(candidate.address) === 'ready');
  return ready.length === 0 ? candidates : ready;
}
