import 'reflect-metadata';

/*
 * Where the decorators keep what they record, in either TypeScript decorator mode.
 *
 * Legacy decorators (`experimentalDecorators`) receive the class or its prototype, and we
 * record on it through reflect-metadata (which also holds TypeScript's `design:*` types).
 * Standard (TC39) decorators never see the class from a member decorator; what they share per
 * class is `context.metadata`, an object that TypeScript then installs as
 * `Class[Symbol.metadata]` and whose prototype is the base class's, so records are kept as own
 * properties of it. Readers look in both places, so a service class compiled in one mode may
 * extend a base class compiled in the other.
 *
 * This is the only module that imports reflect-metadata.
 */

/*
 * Node 20 and 22 have no Symbol.metadata, and TypeScript's output then hands standard
 * decorators `context.metadata === undefined` (it emits `Symbol.metadata ? … : void 0` when
 * the class is defined). The TypeScript 5.2 release notes give this polyfill; a decorated class
 * always imports this module first, so it runs in time. `Symbol.for('Symbol.metadata')` is the
 * key esbuild's output falls back to, so classes compiled by either tool agree. An existing
 * Symbol.metadata (native or another polyfill) is kept.
 */
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for('Symbol.metadata');
const METADATA: symbol = (Symbol as unknown as { metadata: symbol }).metadata;

/** The fields of a standard decorator's context that the decorators use. */
export interface StandardContext {
  readonly kind: string;
  readonly name: string | symbol | undefined;
  readonly static?: boolean;
  readonly private?: boolean;
  readonly metadata?: object;
  addInitializer(initializer: () => void): void;
}

/**
 * Whether a decorator's second argument is a standard decorator context. A legacy decorator's
 * second argument is a property key or absent, never an object.
 */
export function isStandardContext(value: unknown): value is StandardContext {
  return value !== null && typeof value === 'object' && typeof (value as { kind?: unknown }).kind === 'string';
}

/**
 * Where one class's records are written: its constructor or prototype (legacy) or the
 * `context.metadata` of its standard decorators.
 */
export type RecordHolder = { readonly legacy: object } | { readonly standard: object };

/** The holder of a standard decorator's records; throws when the compiler gave no metadata object. */
export function standardHolder(context: StandardContext, decorator: string): RecordHolder {
  if (context.metadata === null || typeof context.metadata !== 'object') {
    throw new TypeError(
      `shuttle-rpc: ${decorator} got a standard decorator context without metadata: Symbol.metadata was undefined when the class was defined, or the compiler does not implement decorator metadata (TypeScript does from 5.2)`,
    );
  }
  return { standard: context.metadata };
}

/** The record under `key` that `holder` owns, made by `create` when it has none yet. */
export function ownRecord<V>(holder: RecordHolder, key: symbol, create: () => V): V {
  if ('legacy' in holder) {
    let value = Reflect.getOwnMetadata(key, holder.legacy) as V | undefined;
    if (value === undefined) {
      value = create();
      Reflect.defineMetadata(key, value, holder.legacy);
    }
    return value;
  }
  const metadata = holder.standard as Record<symbol, unknown>;
  if (!Object.hasOwn(metadata, key)) metadata[key] = create();
  return metadata[key] as V;
}

/** Sets the record under `key` of `holder`, replacing what it owned. */
export function setRecord(holder: RecordHolder, key: symbol, value: unknown): void {
  if ('legacy' in holder) Reflect.defineMetadata(key, value, holder.legacy);
  else (holder.standard as Record<symbol, unknown>)[key] = value;
}

/**
 * The records under `key` that one class owns, from either mode: `legacyTarget` is where the
 * legacy decorators wrote (the constructor or the prototype), `ctor` the class itself.
 */
export function readOwn<V>(key: symbol, legacyTarget: object, ctor: unknown): V[] {
  const found: V[] = [];
  const legacy = Reflect.getOwnMetadata(key, legacyTarget) as V | undefined;
  if (legacy !== undefined) found.push(legacy);
  if (typeof ctor === 'function' && Object.hasOwn(ctor, METADATA)) {
    const metadata = (ctor as unknown as Record<symbol, unknown>)[METADATA];
    if (metadata !== null && typeof metadata === 'object' && Object.hasOwn(metadata, key)) found.push((metadata as Record<symbol, V>)[key]!);
  }
  return found;
}

/** The class a prototype belongs to, when it names one as its own `constructor`. */
export function classOf(prototype: object): unknown {
  return Object.hasOwn(prototype, 'constructor') ? (prototype as { constructor: unknown }).constructor : undefined;
}

/**
 * TypeScript's `design:paramtypes` of a legacy-decorated method, as type names; descriptive
 * only (standard decorators have no such metadata).
 */
export function designParamTypes(prototype: object, property: string): string[] {
  const types = (Reflect.getMetadata('design:paramtypes', prototype, property) as Function[] | undefined) ?? [];
  return types.map((type) => type?.name ?? 'unknown');
}
