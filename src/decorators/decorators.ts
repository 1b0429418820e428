import 'reflect-metadata';
import { checkBool, checkInt, checkKnownKeys, checkName, checkOptionalName, invalidOption, MAX_TIMER_MS } from '../common/validate.js';

/*
 * The only module that touches reflect-metadata. Decorators write into our own metadata keys;
 * the rest of the framework reads the results through the typed getters below. Nothing on the
 * wire depends on TypeScript's `design:*` metadata: it is only read to describe parameter types
 * for humans (and a canary test proves the build emits it).
 */

const SERVICE_KEY = Symbol.for('shuttle-rpc:service');
const METHODS_KEY = Symbol.for('shuttle-rpc:methods');
const REFERENCES_KEY = Symbol.for('shuttle-rpc:references');

/** Options of {@link RpcService}. */
export interface RpcServiceOptions {
  /** The service name consumers ask for, e.g. `inference.LLM`. */
  name: string;
  /** The version consumers must match; empty when unversioned. */
  version?: string;
  /** A group that partitions providers of one service (Dubbo's `group`); empty by default. */
  group?: string;
}

/** Options of {@link RpcMethod}. */
export interface RpcMethodOptions {
  /** Safe to execute more than once (allows retries after the request may have run). */
  idempotent?: boolean;
  /** The method is an async generator whose yields are streamed to the caller. */
  stream?: boolean;
  /** A default timeout for calls to this method, in ms; a per-call timeout overrides it. */
  timeoutMs?: number;
}

/** What {@link RpcService} recorded about a class. */
export interface ServiceMetadata {
  readonly name: string;
  readonly version: string;
  readonly group: string;
}

/** What {@link RpcMethod} recorded about one method. */
export interface MethodMetadata {
  readonly name: string;
  readonly idempotent: boolean;
  readonly stream: boolean;
  readonly timeoutMs: number | undefined;
  /** Parameter type names from `design:paramtypes`; descriptive only. */
  readonly paramTypes: readonly string[];
}

/** What {@link RpcReference} recorded about one property. */
export interface ReferenceMetadata {
  readonly property: string | symbol;
  readonly service: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * Marks a class as an exported RPC service. Only methods also marked with {@link RpcMethod}
 * become callable.
 */
export function RpcService(options: RpcServiceOptions): ClassDecorator {
  if (options === null || typeof options !== 'object') throw invalidOption('@RpcService options', options, 'an object with a name');
  checkKnownKeys('@RpcService', options, ['name', 'version', 'group']);
  const meta: ServiceMetadata = {
    name: checkName('@RpcService name', options.name),
    version: checkOptionalName('@RpcService version', options.version),
    group: checkOptionalName('@RpcService group', options.group),
  };
  return (target) => {
    Reflect.defineMetadata(SERVICE_KEY, meta, target);
  };
}

/** Marks a method of an {@link RpcService} class as callable over RPC. */
export function RpcMethod(options: RpcMethodOptions = {}): MethodDecorator {
  if (options === null || typeof options !== 'object') throw invalidOption('@RpcMethod options', options, 'an object');
  checkKnownKeys('@RpcMethod', options, ['idempotent', 'stream', 'timeoutMs']);
  const idempotent = checkBool('@RpcMethod idempotent', options.idempotent, false);
  const stream = checkBool('@RpcMethod stream', options.stream, false);
  const timeoutMs = checkInt('@RpcMethod timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS);
  return (target, property, descriptor) => {
    if (typeof property !== 'string') throw new TypeError('shuttle-rpc: @RpcMethod needs a string-named method, not a symbol');
    if (typeof descriptor.value !== 'function') {
      throw new TypeError(`shuttle-rpc: @RpcMethod on ${property} must decorate a method, not an accessor or field`);
    }
    const paramTypes = (Reflect.getMetadata('design:paramtypes', target, property) as Function[] | undefined) ?? [];
    const meta: MethodMetadata = {
      name: property,
      idempotent,
      stream,
      timeoutMs,
      paramTypes: paramTypes.map((type) => type?.name ?? 'unknown'),
    };
    const own = (Reflect.getOwnMetadata(METHODS_KEY, target) as Map<string, MethodMetadata> | undefined) ?? new Map();
    own.set(property, meta);
    Reflect.defineMetadata(METHODS_KEY, own, target);
  };
}

/**
 * Marks a property to receive a client proxy for `service` when the object is passed to
 * `client.inject(obj)`. `options` are the same as those of `client.proxy`.
 */
export function RpcReference(service: string, options: Readonly<Record<string, unknown>> = {}): PropertyDecorator {
  checkName('@RpcReference service', service);
  if (options === null || typeof options !== 'object') throw invalidOption('@RpcReference options', options, 'an object');
  return (target, property) => {
    const own = (Reflect.getOwnMetadata(REFERENCES_KEY, target) as ReferenceMetadata[] | undefined) ?? [];
    own.push({ property, service, options });
    Reflect.defineMetadata(REFERENCES_KEY, own, target);
  };
}

/** The service metadata of an instance's class, or undefined when it is not an RpcService. */
export function getServiceMetadata(instance: object): ServiceMetadata | undefined {
  return Reflect.getMetadata(SERVICE_KEY, instance.constructor) as ServiceMetadata | undefined;
}

/**
 * The RpcMethod metadata of an instance, including methods decorated on base classes; a
 * subclass's decoration of the same name wins.
 */
export function getMethodMetadata(instance: object): ReadonlyMap<string, MethodMetadata> {
  const chain: object[] = [];
  for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    chain.push(proto);
  }
  const merged = new Map<string, MethodMetadata>();
  for (const proto of chain.reverse()) {
    const own = Reflect.getOwnMetadata(METHODS_KEY, proto) as Map<string, MethodMetadata> | undefined;
    for (const [name, meta] of own ?? []) merged.set(name, meta);
  }
  return merged;
}

/** The RpcReference properties of an instance, base classes included. */
export function getReferenceMetadata(instance: object): readonly ReferenceMetadata[] {
  const all: ReferenceMetadata[] = [];
  for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    all.push(...((Reflect.getOwnMetadata(REFERENCES_KEY, proto) as ReferenceMetadata[] | undefined) ?? []));
  }
  return all;
}
