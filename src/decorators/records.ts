import type { ServiceDescriptor } from './descriptor.js';
import { classOf, readOwn } from './store.js';

/*
 * What the decorators record and how the rest of the framework reads it. The records are the
 * same in both decorator modes; only where they are kept differs (store.ts).
 */

/*
 * Record keys. `Symbol.for`, so that two copies of the package (say, one bundled by a plugin)
 * read each other's records.
 */
/** Key of a class's {@link ServiceMetadata}. */
export const SERVICE_KEY = Symbol.for('shuttle-rpc:service');
/** Key of a class's own `@RpcMethod` records: a Map of method name to {@link MethodRecord}. */
export const METHODS_KEY = Symbol.for('shuttle-rpc:methods');
/** Key of a class's own `@RpcReference` records: an array of {@link ReferenceMetadata}. */
export const REFERENCES_KEY = Symbol.for('shuttle-rpc:references');

/** What `@RpcService` recorded about a class. */
export interface ServiceMetadata {
  readonly name: string;
  readonly version: string;
  readonly group: string;
  /** The contract the class was exported with, when `@RpcService` was given a descriptor. */
  readonly descriptor?: ServiceDescriptor;
}

/** What `@RpcMethod` recorded about one method, or what a descriptor implies for it. */
export interface MethodMetadata {
  readonly name: string;
  readonly idempotent: boolean;
  readonly stream: boolean;
  readonly timeoutMs: number | undefined;
  /**
   * Parameter type names from `design:paramtypes`; descriptive only, and empty under standard
   * decorators, for which TypeScript emits no type metadata.
   */
  readonly paramTypes: readonly string[];
}

/** One `@RpcMethod` as written: `stream` is undefined when the options did not say. */
export interface MethodRecord extends Omit<MethodMetadata, 'stream'> {
  readonly stream: boolean | undefined;
}

/** What `@RpcReference` recorded about one property. */
export interface ReferenceMetadata {
  readonly property: string | symbol;
  readonly service: string;
  /** The descriptor the reference was declared with, when it was given one. */
  readonly descriptor?: ServiceDescriptor;
  readonly options: Readonly<Record<string, unknown>>;
}

/** The service metadata of a class, from itself or its nearest decorated base class. */
export function serviceOfClass(ctor: unknown): ServiceMetadata | undefined {
  for (let current = ctor; typeof current === 'function' && current !== Function.prototype; current = Object.getPrototypeOf(current)) {
    const own = readOwn<ServiceMetadata>(SERVICE_KEY, current, current);
    if (own.length > 0) return own.at(-1);
  }
  return undefined;
}

/** The prototypes from `prototype` up to (not including) Object.prototype, nearest first. */
function chainOf(prototype: object | null): object[] {
  const chain: object[] = [];
  for (let proto = prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) chain.push(proto);
  return chain;
}

/** Every `@RpcMethod` on `prototype` and its bases; a subclass's decoration of a name wins. */
export function decoratedMethods(prototype: object | null): Map<string, MethodRecord> {
  const merged = new Map<string, MethodRecord>();
  for (const proto of chainOf(prototype).reverse()) {
    for (const own of readOwn<Map<string, MethodRecord>>(METHODS_KEY, proto, classOf(proto))) {
      for (const [name, record] of own) merged.set(name, record);
    }
  }
  return merged;
}

/**
 * The callable methods of a class with service metadata `service`. Without a descriptor, the
 * `@RpcMethod` methods (unary unless they say `stream: true`). With one, exactly the
 * descriptor's methods, in the descriptor's kinds: `@RpcMethod` on them is optional (for
 * `idempotent` and `timeoutMs`), a `stream` option that contradicts the descriptor and an
 * `@RpcMethod` the descriptor does not list are errors, since the consumers' proxies are
 * built from the descriptor alone.
 */
export function resolveMethods(prototype: object | null, service: ServiceMetadata | undefined, className: string): Map<string, MethodMetadata> {
  const decorated = decoratedMethods(prototype);
  const descriptor = service?.descriptor;
  const resolved = new Map<string, MethodMetadata>();
  if (descriptor === undefined) {
    for (const [name, record] of decorated) resolved.set(name, { ...record, stream: record.stream ?? false });
    return resolved;
  }
  const listed = Object.keys(descriptor.methods);
  for (const name of decorated.keys()) {
    if (!(name in descriptor.methods)) {
      throw new TypeError(
        `shuttle-rpc: ${className}.${name} has @RpcMethod but service descriptor ${descriptor.name} does not list it (it lists ${listed.join(', ')})`,
      );
    }
  }
  for (const name of listed) {
    const stream = descriptor.methods[name]!.kind === 'server-stream';
    const record = decorated.get(name);
    if (record?.stream !== undefined && record.stream !== stream) {
      throw new TypeError(
        `shuttle-rpc: ${className}.${name} has @RpcMethod({ stream: ${record.stream} }) but service descriptor ${descriptor.name} declares it ${stream ? 'serverStream' : 'unary'}`,
      );
    }
    resolved.set(name, { name, idempotent: record?.idempotent ?? false, stream, timeoutMs: record?.timeoutMs, paramTypes: record?.paramTypes ?? [] });
  }
  return resolved;
}

/** Every `@RpcReference` on `prototype` and its bases. */
export function referencesOf(prototype: object | null): ReferenceMetadata[] {
  const all: ReferenceMetadata[] = [];
  for (const proto of chainOf(prototype)) {
    for (const own of readOwn<ReferenceMetadata[]>(REFERENCES_KEY, proto, classOf(proto))) all.push(...own);
  }
  return all;
}
