import { randomUUID } from 'node:crypto';
import { getMethodMetadata, getServiceMetadata, type MethodMetadata, type ServiceMetadata } from '../decorators/decorators.js';
import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import { composeFilters, type Filter, type FilterInvocation } from '../filter/filter.js';
import { ADMITTED } from '../filter/token.js';
import type { Logger } from '../log/log.js';
import { LogBudget } from '../log/log-budget.js';
import type { SerializerSet } from '../serializer/serializer.js';
import type { CallHandler, ProviderCallInfo, RequestHead, ResolvedMethod, ServedService } from '../transport/transport.js';
import type { CallContext } from '../call/call-context.js';
import type { Metadata, Peer } from '../call/invocation.js';
import { runInCallScope } from '../call/call-scope.js';
import { createContextKey, createContextValues } from '../call/context-values.js';

/** Handler failures logged with their stacks: this many at once, then FAILURE_LINES_PER_SECOND a second; the rest are counted in the next line. */
const FAILURE_LINES_BURST = 50;
const FAILURE_LINES_PER_SECOND = 10;

/** One exported service: its decorator metadata and its callable methods. */
export interface ExportedService {
  readonly meta: ServiceMetadata;
  readonly methods: ReadonlyMap<string, ResolvedMethod & { readonly meta: MethodMetadata }>;
}

/**
 * Routes requests to exported service instances. Only methods decorated with @RpcMethod are
 * reachable: names are looked up in a Map built at start-up from the decorator metadata, so
 * `__proto__`, `constructor`, `toString` and every other inherited or undecorated name misses
 * and is answered UNIMPLEMENTED before any argument is decoded.
 */
export class Dispatcher implements CallHandler {
  readonly serializers: SerializerSet;
  /** Service name -> "version\0group" -> export. */
  readonly #services = new Map<string, Map<string, ExportedService>>();

  readonly #filters: readonly Filter[];
  /** Filters that look at calls before their payload is decoded (the token check). */
  readonly #admitters: readonly Filter[];
  readonly #log: Logger | undefined;
  /** Lines for handler failures: a caller whose every call makes its handler throw must not make one line (with a stack) per call. */
  readonly #failureLines = new LogBudget(FAILURE_LINES_BURST, FAILURE_LINES_PER_SECOND);
  readonly #scopes: boolean;
  readonly #exposeErrors: boolean;

  /**
   * @param filters the provider filter chain, already ordered; every call runs through it
   * @param log where handler failures that are not RpcErrors are reported (at error)
   * @param scopes whether handlers run in their call's scope (calls they make inherit its
   *   deadline and cancellation); false only for a provider that declared it makes no calls
   * @param exposeErrors tell callers the message of such failures too (development only)
   */
  constructor(services: readonly object[], serializers: SerializerSet, filters: readonly Filter[] = [], log?: Logger, scopes = true, exposeErrors = false) {
    this.serializers = serializers;
    this.#exposeErrors = exposeErrors;
    this.#filters = filters;
    this.#admitters = filters.filter((filter) => filter.admit !== undefined);
    this.#log = log;
    this.#scopes = scopes;
    services.forEach((instance, index) => this.#export(instance, index));
  }

  /** Every exported service, for registration. */
  exports(): ExportedService[] {
    return [...this.#services.values()].flatMap((byVersion) => [...byVersion.values()]);
  }

  services(): ServedService[] {
    return this.exports().map(({ meta, methods }) => ({
      service: meta.name,
      version: meta.version,
      group: meta.group,
      methods: [...methods.values()].map((method) => ({ name: method.method, stream: method.stream })),
    }));
  }

  /**
   * A handler that throws an RpcError chose its answer. Anything else is a bug or an
   * unexpected failure whose message may hold what callers must not see (addresses, paths,
   * an engine's own text): the caller gets INTERNAL with a generic message and a correlation
   * id, and the message and stack are logged here under that id. An AbortError (the call's
   * own signal) stays CANCELLED.
   */
  toCallerError(method: Pick<ResolvedMethod, 'service' | 'method'>, error: unknown): RpcError {
    // Whatever was thrown is only looked at through guarded reads: a value whose getters or
    // toString throw must still become an answer, not an unhandled rejection of the provider.
    let kind = error === null ? 'null' : (typeof error as string);
    try {
      if (error instanceof RpcError) return error;
      if (error instanceof Error) {
        if (error.name === 'AbortError') return RpcError.from(error);
        kind = typeof error.name === 'string' ? error.name : 'Error';
      }
    } catch {
      // Looked at below as any other value.
    }
    const correlationId = randomUUID();
    const where = `${method.service}.${method.method}`;
    const held = this.#failureLines.take();
    if (held !== undefined) {
      const more = held === 0 ? '' : `; ${held} such failures before it were not logged (over ${FAILURE_LINES_PER_SECOND} lines a second)`;
      const summary = `${where} threw ${kind}; the caller gets INTERNAL with correlation id ${correlationId}${more}`;
      const notLogged = held === 0 ? {} : { notLogged: held };
      try {
        this.#log?.error({ err: error, service: method.service, method: method.method, correlationId, ...notLogged }, summary);
      } catch {
        // The logger's error serializer read a getter that throws: log what can be shown.
        this.#log?.error({ service: method.service, method: method.method, correlationId, thrown: thrownMessage(error), ...notLogged }, summary);
      }
    }
    const detail = this.#exposeErrors ? `: ${thrownMessage(error)}` : '';
    const logNote =
      held === undefined
        ? `not in the provider's log: it was logging more than ${FAILURE_LINES_PER_SECOND} failures a second`
        : "the provider's log has the detail";
    return new RpcError(RpcCode.INTERNAL, `${where} failed${detail} (correlation id ${correlationId}; ${logNote})`, {
      details: { correlationId },
    });
  }

  /**
   * Finds the method a request names, or the error to answer it with. The filters' admit()
   * (the token check) runs first, on the route as the caller wrote it: a caller without a
   * valid token learns nothing about which services, versions or methods exist here, and
   * costs a hash, not a lookup or a decode.
   */
  resolve(head: RequestHead): ResolvedMethod | RpcError {
    for (const filter of this.#admitters) {
      const refused = this.#admit(filter, head);
      if (refused !== undefined) return refused;
    }
    const byVersion = this.#services.get(head.service);
    if (byVersion === undefined) {
      return new RpcError(RpcCode.UNIMPLEMENTED, `service ${head.service} is not exported by this provider`);
    }
    const exported = byVersion.get(`${head.version}\u0000${head.group}`) ?? this.#anyVersion(byVersion, head);
    if (exported instanceof RpcError) return exported;
    const method = exported.methods.get(head.method);
    if (method === undefined) {
      return new RpcError(RpcCode.UNIMPLEMENTED, `method ${JSON.stringify(head.method)} is not an exported method of ${head.service}`, {
        details: { exported: [...exported.methods.keys()] },
      });
    }
    return method;
  }

  /**
   * One filter's admit(), held to its contract: it is user code, and what it throws, or an
   * answer that is neither undefined nor an RpcError, refuses only this call — INTERNAL with a
   * correlation id, the filter named in the provider's log — instead of escaping into the
   * connection (which closed it, every call on it with it, and showed the caller the text).
   */
  #admit(filter: Filter, head: RequestHead): RpcError | undefined {
    let refused: unknown;
    try {
      refused = filter.admit!({ service: head.service, version: head.version, method: head.method, metadata: head.meta });
      // Inside the guard: a Proxy's prototype read may throw too.
      if (refused === undefined || refused instanceof RpcError) return refused as RpcError | undefined;
    } catch (error) {
      return this.toCallerError(
        head,
        new TypeError(`shuttle-rpc: provider filter "${String(filter.name)}" threw in admit(): ${thrownMessage(error)}`, { cause: error }),
      );
    }
    const got = refused === null ? 'null' : typeof refused;
    return this.toCallerError(
      head,
      new TypeError(`shuttle-rpc: provider filter "${String(filter.name)}" admit() returned ${got}, not an RpcError or undefined`),
    );
  }

  /** A request without a version is served when exactly one version exists in its group. */
  #anyVersion(byVersion: Map<string, ExportedService>, head: RequestHead): ExportedService | RpcError {
    const candidates = [...byVersion.values()].filter((service) => service.meta.group === head.group);
    if (head.version === '' && candidates.length === 1) return candidates[0]!;
    const versions = candidates.map((service) => service.meta.version || '(none)');
    return new RpcError(
      RpcCode.UNIMPLEMENTED,
      `service ${head.service} version ${JSON.stringify(head.version)} group ${JSON.stringify(head.group)} is not exported here` +
        (versions.length > 0 ? ` (exported versions in this group: ${versions.join(', ')})` : ''),
    );
  }

  #export(instance: object, index: number): void {
    if (typeof instance === 'function' && getServiceMetadata(instance.prototype as object) !== undefined) {
      const name = (instance as Function).name || 'the class';
      throw new TypeError(`shuttle-rpc: services[${index}] is the class ${name} itself; pass an instance (new ${name}())`);
    }
    if (instance === null || typeof instance !== 'object') {
      throw new TypeError(`shuttle-rpc: services[${index}] must be an instance of an @RpcService class, got ${typeof instance}`);
    }
    const meta = getServiceMetadata(instance);
    if (meta === undefined) {
      const name = (instance.constructor as Function | undefined)?.name || 'object';
      throw new TypeError(
        `shuttle-rpc: services[${index}] (${name}) is not decorated with @RpcService (put @RpcService on its class; in plain JavaScript, call RpcService(options)(${name === 'Object' || name === 'object' ? 'TheClass' : name}))`,
      );
    }
    const methods = new Map<string, ResolvedMethod & { meta: MethodMetadata }>();
    for (const [name, methodMeta] of getMethodMetadata(instance)) {
      const fn = (instance as Record<string, unknown>)[name];
      if (typeof fn !== 'function') {
        throw new TypeError(`shuttle-rpc: ${meta.name}.${name} is decorated with @RpcMethod but is not a function on the instance`);
      }
      if (!methodMeta.stream && isAsyncGeneratorFunction(fn)) {
        const declare =
          meta.descriptor === undefined ? 'add @RpcMethod({ stream: true })' : `declare it serverStream in service descriptor ${meta.descriptor.name}`;
        throw new TypeError(`shuttle-rpc: ${meta.name}.${name} is an async generator but is exported as unary, so callers would get {}: ${declare}`);
      }
      methods.set(name, bindMethod(instance, fn as Function, meta, methodMeta, this.#filters, this.#scopes));
    }
    if (methods.size === 0) throw new TypeError(`shuttle-rpc: service ${meta.name} has no @RpcMethod methods`);
    let byVersion = this.#services.get(meta.name);
    if (byVersion === undefined) {
      byVersion = new Map();
      this.#services.set(meta.name, byVersion);
    }
    const key = `${meta.version}\u0000${meta.group}`;
    if (byVersion.has(key)) {
      throw new TypeError(`shuttle-rpc: service ${meta.name} version ${JSON.stringify(meta.version)} group ${JSON.stringify(meta.group)} is exported twice`);
    }
    byVersion.set(key, { meta, methods });
  }
}

/** The transport's running call, for the end of the provider's filter chain. */
const PROVIDER_CALL = createContextKey<ProviderCallInfo | undefined>(undefined, 'shuttle-rpc provider call');
/** Set once the provider's filter chain has handed the call to its method. */
const PASSED_ON = createContextKey(false, 'shuttle-rpc provider call passed on');

/**
 * What a handler is handed. A class, so that one per call is one small object of a fixed shape
 * (an object literal with a getter is built by the runtime, with a closure for the getter).
 */
class HandlerContext implements CallContext {
  readonly deadline: number | undefined;
  readonly metadata: Readonly<Metadata>;
  readonly peer: Peer;
  readonly #info: ProviderCallInfo;
  #signal: AbortSignal | undefined;

  constructor(
    readonly service: string,
    readonly method: string,
    info: ProviderCallInfo,
  ) {
    this.deadline = info.deadline;
    this.metadata = info.meta;
    this.peer = info.peer;
    this.#info = info;
  }

  /** Made only for handlers that read it; kept once made, since a streaming handler reads it at every step. */
  get signal(): AbortSignal {
    return (this.#signal ??= this.#info.signal);
  }
}

function bindMethod(
  instance: object,
  fn: Function,
  service: ServiceMetadata,
  meta: MethodMetadata,
  filters: readonly Filter[],
  scopes: boolean,
): ResolvedMethod & { meta: MethodMetadata } {
  const run = (request: unknown, info: ProviderCallInfo): Promise<unknown> => {
    const context = new HandlerContext(service.name, meta.name, info);
    // Not an async function: one promise less per call. A synchronous throw still becomes a
    // rejection, and a plain (non-promise) return value is accepted. The handler runs in the
    // call's scope, so calls it makes inherit its deadline and cancellation.
    try {
      // A stream's values are pulled in the scope by the transport (ResolvedMethod.inScope).
      return Promise.resolve(scopes ? runInCallScope(info, () => fn.call(instance, request, context)) : fn.call(instance, request, context));
    } catch (error) {
      return Promise.reject(error);
    }
  };
  // Composed once; the chain ends in the method, called with the request the filters passed
  // on and the transport's call info, which rides along under a symbol key (filters copy the
  // invocation with a spread, which keeps it).
  const chain = composeFilters(filters, (invocation) => {
    const info = invocation.values?.get(PROVIDER_CALL);
    if (info === undefined) {
      return Promise.reject(
        new RpcError(RpcCode.INTERNAL, `a provider filter of ${service.name}.${meta.name} passed on an invocation not copied from the one it got`),
      );
    }
    // A filter that calls next again would run the handler again (a second execution the caller
    // never asked for, its answer lost): the second pass fails instead.
    if (invocation.values.get(PASSED_ON)) {
      return Promise.reject(
        new TypeError(
          `shuttle-rpc: a provider filter of ${service.name}.${meta.name} (${filters.map((filter) => filter.name).join(', ')}) called next a second time; a filter passes a call on at most once`,
        ),
      );
    }
    invocation.values.set(PASSED_ON, true);
    return run(invocation.request, info);
  });
  const invoke =
    filters.length === 0
      ? run
      : (request: unknown, info: ProviderCallInfo): Promise<unknown> => {
          const invocation: FilterInvocation = {
            side: 'provider',
            service: service.name,
            version: service.version,
            method: meta.name,
            request,
            stream: meta.stream,
            metadata: info.meta,
            deadline: info.deadline,
            peer: info.peer,
            // resolve() ran the filters' admit() before this call's payload was decoded.
            values: createContextValues().set(PROVIDER_CALL, info).set(ADMITTED, true),
          };
          return chain(invocation);
        };
  return {
    service: service.name,
    method: meta.name,
    stream: meta.stream,
    timeoutMs: meta.timeoutMs,
    meta,
    invoke,
    ...(scopes ? { inScope: runInCallScope } : {}),
  };
}

/** Whether `fn` is an `async function*` (a method whose calls return an async generator). */
function isAsyncGeneratorFunction(fn: Function): boolean {
  return Object.prototype.toString.call(fn) === '[object AsyncGeneratorFunction]';
}
