import { RpcCode, RpcError } from '../errors/errors.js';

/** What the json serializer may be told to accept beyond plain JSON values. */
export interface JsonCheckOptions {
  /** Dates travel as ISO-8601 strings (and arrive as strings): only when declared. */
  readonly dates: boolean;
  /** Deepest nesting of arrays and objects (the decoder's own limit, so the peer would refuse more). */
  readonly maxDepth: number;
  /** Values in all, object keys included, as the decoder counts them (json-guard.ts). */
  readonly maxElements: number;
  /** Keys of one object. */
  readonly maxMapKeys: number;
}

/** Prototypes whose objects JSON would turn into something else; named in the error. */
const REFUSED: ReadonlyArray<readonly [abstract new (...args: never[]) => unknown, string]> = [
  [Map, 'a Map (JSON makes it {})'],
  [Set, 'a Set (JSON makes it {})'],
  [WeakMap, 'a WeakMap'],
  [WeakSet, 'a WeakSet'],
  [ArrayBuffer, 'an ArrayBuffer (JSON makes it {})'],
  [DataView, 'a DataView (JSON makes it {})'],
  [RegExp, 'a RegExp (JSON makes it {})'],
  [Error, 'an Error (JSON makes it {})'],
  [Promise, 'a Promise'],
  [EventTarget, 'an EventTarget such as an AbortSignal (JSON makes it {}; a signal goes in the call options: { signal })'],
];

/**
 * Refuses a value JSON cannot carry faithfully, before it is encoded: non-finite numbers (JSON
 * makes them null), bigints, functions and symbols, `undefined` inside an array (null),
 * typed arrays and Buffers ({"0":…} or {type, data}), Map, Set, RegExp, Error, EventTarget, Dates unless
 * declared (they arrive as strings), objects with their own `toJSON`, cycles, and nesting,
 * values or keys past the decode limits (`maxDepth`, `maxElements`, `maxMapKeys`). Throws
 * naming the path of the first bad value (`request.messages[2].embedding`) and what it is:
 * INVALID_ARGUMENT for a request, INTERNAL for a response. `undefined` object properties are left out,
 * as JSON does: reading them on the other side still gives undefined.
 */
export function checkJsonValue(value: unknown, root: 'request' | 'response', options: JsonCheckOptions): void {
  try {
    walk(value, root, 0, [], options, { elements: 0 });
  } catch (error) {
    // A response that cannot be carried is the provider's fault, whichever path sends it.
    if (root === 'response' && error instanceof RpcError && error.code === RpcCode.INVALID_ARGUMENT) {
      throw new RpcError(RpcCode.INTERNAL, error.rawMessage, { details: error.details });
    }
    throw error;
  }
}

function walk(value: unknown, path: string, depth: number, ancestors: object[], options: JsonCheckOptions, count: { elements: number }): void {
  // undefined object properties are left out by JSON, so they are not counted.
  if (value !== undefined && ++count.elements > options.maxElements) {
    refuse(path, `one value too many: more than ${options.maxElements} in all, keys included (decode limit maxElements)`);
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) refuse(path, `${String(value)} (JSON has no value for it)`);
      return;
    case 'bigint':
      return refuse(path, 'a BigInt (JSON has no integer type beyond 2^53)');
    case 'function':
    case 'symbol':
      return refuse(path, `a ${typeof value}`);
    case 'undefined':
      return;
  }
  if (value === null) return;
  const object = value as object;
  if (ArrayBuffer.isView(object)) refuse(path, `a ${object.constructor.name} (JSON makes it an object of indices)`);
  if (object instanceof Date) {
    if (!options.dates) refuse(path, 'a Date (it would arrive as a string; declare `dates: true` on the json serializer to send it as one)');
    // An invalid Date has no ISO-8601 form: JSON.stringify writes null.
    if (Number.isNaN(object.getTime())) refuse(path, 'an invalid Date (JSON makes it null)');
    return;
  }
  for (const [type, what] of REFUSED) if (object instanceof type) refuse(path, what);
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') refuse(path, 'an object with its own toJSON');
  if (depth >= options.maxDepth) refuse(path, `nested deeper than ${options.maxDepth} levels`);
  if (ancestors.includes(object)) refuse(path, 'a reference to one of its own ancestors (a cycle)');
  ancestors.push(object);
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) {
      const item: unknown = object[i];
      if (item === undefined) refuse(`${path}[${i}]`, 'undefined in an array (JSON makes it null)');
      walk(item, `${path}[${i}]`, depth + 1, ancestors, options, count);
    }
  } else {
    const keys = Object.keys(object);
    if (keys.length > options.maxMapKeys) refuse(path, `an object of ${keys.length} keys, more than ${options.maxMapKeys} (decode limit maxMapKeys)`);
    for (const key of keys) {
      const item = (object as Record<string, unknown>)[key];
      // A key counts as a value of its own (a string), as the decoder counts it.
      if (item !== undefined && ++count.elements > options.maxElements) {
        refuse(member(path, key), `one value too many: more than ${options.maxElements} in all, keys included (decode limit maxElements)`);
      }
      walk(item, member(path, key), depth + 1, ancestors, options, count);
    }
  }
  ancestors.pop();
}

function member(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function refuse(path: string, what: string): never {
  throw new RpcError(RpcCode.INVALID_ARGUMENT, `the json serializer cannot carry ${path}: it is ${what}`, { details: { path } });
}
