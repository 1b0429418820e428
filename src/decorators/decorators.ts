import { checkBool, checkInt, checkKnownKeys, checkName, checkOptionalName, invalidOption, MAX_TIMER_MS, optionKeys } from '../common/validate.js';
import { checkMethodName, isServiceDescriptor, type ServiceDescriptor, type ServiceImplementation } from './descriptor.js';
import {
  METHODS_KEY,
  REFERENCES_KEY,
  SERVICE_KEY,
  referencesOf,
  resolveMethods,
  serviceOfClass,
  type MethodMetadata,
  type MethodRecord,
  type ReferenceMetadata,
  type ServiceMetadata,
} from './records.js';
import { designParamTypes, isStandardContext, ownRecord, setRecord, standardHolder, type RecordHolder, type StandardContext } from './store.js';

/*
 * The decorators work in both TypeScript decorator modes and tell them apart by their
 * arguments: a standard (TC39) decorator gets `(value, context)` with `context.kind`; a legacy
 * one (`experimentalDecorators`) gets `(constructor)` or `(prototype, key[, descriptor])`. Each
 * records the same thing either way (store.ts says where). Nothing on the wire depends on
 * TypeScript's `design:*` metadata.
 */

export { defineService, isServiceDescriptor, serverStream, unary } from './descriptor.js';
export type { MethodDescriptor, MethodKind, MethodKinds, MethodNames, ServiceDescriptor, ServiceImplementation } from './descriptor.js';
export type { MethodMetadata, ReferenceMetadata, ServiceMetadata } from './records.js';

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

const SERVICE_KEYS = optionKeys<RpcServiceOptions>()(['name', 'version', 'group']);
/** The options beside a service descriptor, which names the service itself. */
const DESCRIBED_SERVICE_KEYS = optionKeys<Omit<RpcServiceOptions, 'name'>>()(['version', 'group']);
const METHOD_KEYS = optionKeys<RpcMethodOptions>()(['idempotent', 'stream', 'timeoutMs']);

/** Any class whose instances are `I` (`any` arguments, as TypeScript's own decorator context types have). */
// biome-ignore lint/suspicious/noExplicitAny: a constructor of any parameters (unknown[] would not accept a class whose constructor takes some)
export type AnyClass<I = unknown> = abstract new (...args: any[]) => I;

/** What {@link RpcService} returns: a class decorator for either decorator mode. */
export interface RpcServiceDecorator<C extends AnyClass = AnyClass> {
  /** Standard (TC39) decorators. */
  (value: C, context: ClassDecoratorContext<C>): void;
  /** Legacy decorators (`experimentalDecorators`). */
  (target: C): void;
}

/** What {@link RpcMethod} returns: a method decorator for either decorator mode. */
export interface RpcMethodDecorator {
  /** Standard (TC39) decorators. */
  (value: Function, context: ClassMethodDecoratorContext): void;
  /** Legacy decorators (`experimentalDecorators`). */
  (target: object, property: string | symbol, descriptor: PropertyDescriptor): void;
}

/** What {@link RpcReference} returns: a field decorator for either decorator mode. */
export interface RpcReferenceDecorator {
  /** Standard (TC39) decorators. */
  (value: undefined, context: ClassFieldDecoratorContext): void;
  /** Legacy decorators (`experimentalDecorators`). */
  (target: object, property: string | symbol): void;
}

/**
 * Marks a class as an exported RPC service: `@RpcService({ name, version?, group? })`, or
 * `@RpcService(descriptor, { version?, group? })` with a {@link ServiceDescriptor}, which also
 * makes the compiler check the class against the descriptor's interface. Without a
 * descriptor only `@RpcMethod` methods are callable; with one, exactly the descriptor's
 * methods in its kinds (see {@link getMethodMetadata}), checked when the class is defined.
 * Bad options throw a TypeError naming the key.
 */
export function RpcService(options: RpcServiceOptions): RpcServiceDecorator;
export function RpcService<T>(
  descriptor: ServiceDescriptor<T>,
  options?: Omit<RpcServiceOptions, 'name'>,
): RpcServiceDecorator<AnyClass<ServiceImplementation<T>>>;
export function RpcService(first: RpcServiceOptions | ServiceDescriptor, second?: Omit<RpcServiceOptions, 'name'>): RpcServiceDecorator {
  const meta = serviceMetadata(first, second);
  return function decorate(target: AnyClass, context?: unknown): void {
    const check = (): void => void resolveMethods(target.prototype as object, meta, target.name || meta.name);
    if (isStandardContext(context)) {
      if (context.kind !== 'class') throw new TypeError(`shuttle-rpc: @RpcService decorates a class, not a ${context.kind}`);
      setRecord(standardHolder(context, '@RpcService'), SERVICE_KEY, meta);
      // The class's Symbol.metadata is installed after its class decorators run, before its
      // initializers do: the methods can be read back from there.
      context.addInitializer(check);
      return;
    }
    setRecord({ legacy: target }, SERVICE_KEY, meta);
    check();
  };
}

function serviceMetadata(first: RpcServiceOptions | ServiceDescriptor, second: Omit<RpcServiceOptions, 'name'> | undefined): ServiceMetadata {
  if (isServiceDescriptor(first)) {
    if (second === undefined) return { name: first.name, version: '', group: '', descriptor: first };
    if (second === null || typeof second !== 'object') throw invalidOption('@RpcService options', second, 'an object with version and/or group');
    checkKnownKeys(`@RpcService(${first.name})`, second, DESCRIBED_SERVICE_KEYS);
    const version = checkOptionalName('@RpcService version', second.version);
    return { name: first.name, version, group: checkOptionalName('@RpcService group', second.group), descriptor: first };
  }
  if (first === null || typeof first !== 'object') throw invalidOption('@RpcService options', first, 'an object with a name, or a service descriptor');
  checkKnownKeys('@RpcService', first, SERVICE_KEYS);
  return {
    name: checkName('@RpcService name', first.name),
    version: checkOptionalName('@RpcService version', first.version),
    group: checkOptionalName('@RpcService group', first.group),
  };
}

/**
 * Marks an instance method of an {@link RpcService} class as callable over RPC, with its
 * retry and timeout policy. Throws a TypeError on bad options, and when applied to anything but
 * a string-named, public, non-static method, or to one named `then`, `toJSON` or `constructor`
 * (a proxy with such a method would be awaited, serialized or constructed by accident).
 */
export function RpcMethod(options: RpcMethodOptions = {}): RpcMethodDecorator {
  if (options === null || typeof options !== 'object') throw invalidOption('@RpcMethod options', options, 'an object');
  checkKnownKeys('@RpcMethod', options, METHOD_KEYS);
  const idempotent = checkBool('@RpcMethod idempotent', options.idempotent, false);
  const stream = options.stream === undefined ? undefined : checkBool('@RpcMethod stream', options.stream, false);
  const timeoutMs = checkInt('@RpcMethod timeoutMs', options.timeoutMs, 1, MAX_TIMER_MS);
  const record = (holder: RecordHolder, name: string, paramTypes: readonly string[]): void => {
    checkMethodName(`@RpcMethod on ${name}`, name);
    const meta: MethodRecord = { name, idempotent, stream, timeoutMs, paramTypes };
    ownRecord(holder, METHODS_KEY, () => new Map<string, MethodRecord>()).set(name, meta);
  };
  return function decorate(target: unknown, property: unknown, descriptor?: PropertyDescriptor): void {
    if (isStandardContext(property)) {
      const name = memberName(property, 'method', '@RpcMethod');
      if (typeof name !== 'string') throw new TypeError('shuttle-rpc: @RpcMethod needs a string-named method, not a symbol');
      record(standardHolder(property, '@RpcMethod'), name, []);
      return;
    }
    if (typeof property !== 'string') throw new TypeError('shuttle-rpc: @RpcMethod needs a string-named method, not a symbol');
    if (typeof target === 'function') throw new TypeError(`shuttle-rpc: @RpcMethod on ${property} must decorate an instance method, not a static one`);
    if (typeof descriptor?.value !== 'function') {
      throw new TypeError(`shuttle-rpc: @RpcMethod on ${property} must decorate a method, not an accessor or field`);
    }
    record({ legacy: target as object }, property, designParamTypes(target as object, property));
  } as RpcMethodDecorator;
}

/**
 * Marks a property to receive a client proxy for `service` (a name, or a descriptor whose
 * proxy then knows each method's kind) when the object is passed to `client.inject(obj)`.
 * `options` are those of `client.proxy`. Applies to public instance fields only.
 */
export function RpcReference(service: string | ServiceDescriptor, options: Readonly<Record<string, unknown>> = {}): RpcReferenceDecorator {
  const descriptor = isServiceDescriptor(service) ? service : undefined;
  const name = descriptor?.name ?? checkName('@RpcReference service', service);
  if (options === null || typeof options !== 'object') throw invalidOption('@RpcReference options', options, 'an object');
  const meta = (property: string | symbol): ReferenceMetadata =>
    descriptor === undefined ? { property, service: name, options } : { property, service: name, descriptor, options };
  return function decorate(target: unknown, property: unknown): void {
    if (isStandardContext(property)) {
      const field = memberName(property, 'field', '@RpcReference');
      ownRecord(standardHolder(property, '@RpcReference'), REFERENCES_KEY, (): ReferenceMetadata[] => []).push(meta(field));
      return;
    }
    if (typeof target === 'function')
      throw new TypeError(`shuttle-rpc: @RpcReference on ${String(property)} must decorate an instance field, not a static one`);
    ownRecord({ legacy: target as object }, REFERENCES_KEY, (): ReferenceMetadata[] => []).push(meta(property as string | symbol));
  } as RpcReferenceDecorator;
}

/**
 * The key of the public instance member a standard decorator was applied to; throws unless it
 * is a `kind` (a `#private` member cannot be looked up or assigned by name).
 */
function memberName(context: StandardContext, kind: 'method' | 'field', decorator: string): string | symbol {
  const name = String(context.name);
  if (context.kind !== kind) throw new TypeError(`shuttle-rpc: ${decorator} on ${name} must decorate a ${kind}, not a ${context.kind}`);
  if (context.static) throw new TypeError(`shuttle-rpc: ${decorator} on ${name} must decorate an instance ${kind}, not a static one`);
  if (context.private || context.name === undefined)
    throw new TypeError(`shuttle-rpc: ${decorator} on ${name} must decorate a public ${kind}, not a #private one`);
  return context.name;
}

/** The service metadata of an instance's class, or undefined when it is not an RpcService. */
export function getServiceMetadata(instance: object): ServiceMetadata | undefined {
  return serviceOfClass(instance.constructor);
}

/**
 * The callable methods of an instance: its `@RpcMethod` methods (base classes included; a
 * subclass's decoration of a name wins) or, when its class was exported with a descriptor,
 * the descriptor's methods. Throws a TypeError when the decorations contradict the
 * descriptor or a listed method is not a function on the instance.
 */
export function getMethodMetadata(instance: object): ReadonlyMap<string, MethodMetadata> {
  const service = getServiceMetadata(instance);
  const className = (instance.constructor as Function | undefined)?.name || 'object';
  const methods = resolveMethods(Object.getPrototypeOf(instance) as object | null, service, className);
  if (service?.descriptor !== undefined) {
    for (const name of methods.keys()) {
      if (typeof (instance as Record<string, unknown>)[name] !== 'function') {
        throw new TypeError(`shuttle-rpc: ${className}.${name} is listed in service descriptor ${service.name} but is not a method of the instance`);
      }
    }
  }
  return methods;
}

/** The RpcReference properties of an instance, base classes included. */
export function getReferenceMetadata(instance: object): readonly ReferenceMetadata[] {
  return referencesOf(Object.getPrototypeOf(instance) as object | null);
}
