import { RpcCode, RpcError } from '../errors/errors.js';
import type { DecodeLimits } from './decode-limits.js';
import { findCycle } from './encode-failure.js';
import type { PayloadTarget } from './serializer.js';
import { isWellFormed } from './well-formed.js';

/**
 * Objects msgpack would send as something the receiver refuses (msgpackr writes a Set, an Error
 * and a RegExp as extensions the decoder does not accept: msgpack-guard.ts) or as an empty map
 * (`{}`): named in the error.
 */
const REFUSED: ReadonlyArray<readonly [abstract new (...args: never[]) => unknown, string]> = [
  [Set, 'a Set (the receiver refuses it; send an array)'],
  [Error, 'an Error (the receiver refuses it; send its message and fields as a plain object)'],
  [RegExp, 'a RegExp (the receiver refuses it; send its source as a string)'],
  [WeakMap, 'a WeakMap (msgpack makes it {})'],
  [WeakSet, 'a WeakSet (msgpack makes it {})'],
  [Promise, 'a Promise (msgpack makes it {}; await it first)'],
  [String, 'a String object (msgpack makes it a map of its characters; send the string)'],
  [Number, 'a Number object (msgpack makes it {}; send the number)'],
  [Boolean, 'a Boolean object (msgpack makes it {}; send the boolean)'],
  [EventTarget, 'an EventTarget such as an AbortSignal (msgpack makes it {}; a signal goes in the call options: { signal })'],
];

/** Integers msgpack writes in 64 bits (msgpackr: int64 or uint64). */
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;

/** The largest map msgpackr writes for a plain object: it sizes objects in 16 bits. */
const MAX_OBJECT_KEYS = 0xffff;

/**
 * Refuses, before anything is encoded, a value the msgpack serializer would not deliver as it
 * is: what the receiver's decoder refuses (a Set, Error or RegExp; a Map key that is not a
 * string; nesting past `maxDepth`, a map past `maxMapKeys` keys, more than `maxElements`
 * values, an integer past `maxBigIntBytes` — the decode limits, the same on both sides unless
 * configured apart) and what would arrive changed without a word: a function (it would arrive
 * as undefined), a symbol, a WeakMap, WeakSet, Promise, EventTarget (an AbortSignal) or boxed
 * primitive ({}), a class
 * instance's `toJSON` (msgpackr sends what it returns), a key `__proto__` (msgpackr would
 * rename it `__proto_` on arrival, to guard the prototype; the receiver refuses it), a string or key with a lone surrogate (UTF-8
 * has none: it would arrive as U+FFFD), a reference to an ancestor (a cycle). Throws naming the
 * path of the first bad value (`request.messages[2].tags`) and what it is: INVALID_ARGUMENT for
 * a request, INTERNAL for a response.
 *
 * What msgpack carries as it is: plain objects and class instances' own enumerable fields,
 * arrays, strings, numbers (NaN and ±Infinity too; -0 arrives as 0), BigInt, booleans, null,
 * undefined (in arrays and as a field), Date, typed arrays, Buffer, ArrayBuffer and DataView; a
 * Map with string keys arrives as a plain object.
 */
export function checkMsgpackValue(value: unknown, target: PayloadTarget, limits: DecodeLimits): void {
  // The common payloads (a token, a number) need no walk and no state.
  if (typeof value === 'string') {
    if (!isWellFormed(value)) refuse(target, target.kind, LONE_SURROGATE);
    return;
  }
  if (value === null || typeof value !== 'object') {
    const what = scalarProblem(value, limits);
    if (what !== undefined) refuse(target, target.kind, what);
    return;
  }
  // The root counts as one value, as the decoder counts it.
  const walk: Walk = { limits, elements: 1, problem: undefined };
  if (walkObject(walk, value, 0)) return;
  const problem = walk.problem!;
  if (problem.tooDeep) {
    // A reference back to an ancestor nests without end: named as what it is.
    const cycle = findCycle(value, target.kind);
    if (cycle !== undefined) throw refusal(target, `${cycle.path} refers back to ${cycle.to} (a circular reference; send a copy without it)`);
  }
  const at = problem.container === undefined ? target.kind : (pathTo(value, target.kind, problem.container) ?? target.kind);
  refuse(target, problem.key === undefined ? at : member(at, problem.key), problem.what);
}

/** The first value found that msgpack cannot carry: in `container` (itself when `key` is undefined). */
interface Problem {
  readonly container: object | undefined;
  /** Nested past maxDepth: perhaps a cycle. */
  readonly tooDeep: boolean;
  readonly key: string | number | MapKey | undefined;
  readonly what: string;
}

/** A Map's key (`index`-th) or the value under it, as a path names them. */
interface MapKey {
  readonly index: number;
  readonly key: unknown;
  readonly of: 'key' | 'value';
}

interface Walk {
  readonly limits: DecodeLimits;
  /** Values seen so far (decode limit maxElements). */
  elements: number;
  problem: Problem | undefined;
}

const LONE_SURROGATE = 'a string with a lone surrogate (UTF-8 has none: it would arrive as U+FFFD)';

/*
 * Why the walk is written as it is: it runs before every msgpack encode, so it must cost a
 * fraction of msgpackr's own work. It builds no paths: it stops at the first problem, and only
 * then is the path to it searched for (pathTo). Plain objects and arrays are told apart first
 * (a prototype comparison), before the rarer classes are looked for with instanceof.
 */

/** Checks `value`, a member of `container` under `key`; false (and `walk.problem` set) at the first problem. */
function walkValue(walk: Walk, value: unknown, container: object, key: string | number | MapKey, depth: number): boolean {
  const many = tooMany(walk);
  if (many !== undefined) return fail(walk, container, key, many);
  const type = typeof value;
  if (type === 'string') return isWellFormed(value as string) || fail(walk, container, key, LONE_SURROGATE);
  if (type === 'object') return value === null || walkObject(walk, value as object, depth);
  if (type === 'function' || type === 'symbol' || type === 'bigint') {
    const what = scalarProblem(value, walk.limits);
    if (what !== undefined) return fail(walk, container, key, what);
  }
  return true;
}

function walkObject(walk: Walk, object: object, depth: number): boolean {
  const array = Array.isArray(object);
  if (!array) {
    const proto: unknown = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      // Leaves msgpack carries as they are: typed arrays, Buffer and DataView, ArrayBuffer, Date.
      if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer || object instanceof Date) return true;
      if (object instanceof Map) return checkDepth(walk, object, depth) && walkMap(walk, object, depth);
      for (const [type, what] of REFUSED) if (object instanceof type) return fail(walk, object, undefined, what);
      if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
        return fail(walk, object, undefined, 'an object with a toJSON method (msgpack would send what it returns: send that value)');
      }
    }
  }
  if (!checkDepth(walk, object, depth)) return false;
  if (array) {
    const items = object as unknown[];
    for (let i = 0; i < items.length; i++) if (!walkValue(walk, items[i], object, i, depth + 1)) return false;
    return true;
  }
  // for-in with an own-property check, as msgpackr writes an object: no array of keys made.
  let count = 0;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    if (++count > walk.limits.maxMapKeys || count > MAX_OBJECT_KEYS) return checkKeyCount(walk, object, Object.keys(object).length);
    const what = keyProblem(key) ?? tooMany(walk);
    if (what !== undefined) return fail(walk, object, key, what);
    if (!walkValue(walk, (object as Record<string, unknown>)[key], object, key, depth + 1)) return false;
  }
  return true;
}

function walkMap(walk: Walk, map: Map<unknown, unknown>, depth: number): boolean {
  if (!checkKeyCount(walk, map, map.size)) return false;
  let index = 0;
  for (const [key, item] of map) {
    const what =
      (typeof key === 'string'
        ? keyProblem(key)
        : `a Map key of type ${key === null ? 'null' : typeof key} (a Map arrives as a plain object: its keys must be strings)`) ?? tooMany(walk);
    if (what !== undefined) return fail(walk, map, { index, key, of: 'key' }, what);
    if (!walkValue(walk, item, map, { index, key, of: 'value' }, depth + 1)) return false;
    index++;
  }
  return true;
}

/** Refuses a container nested `depth` deep past the limit; a cycle is named as one. */
function checkDepth(walk: Walk, object: object, depth: number): boolean {
  if (depth < walk.limits.maxDepth) return true;
  return fail(walk, object, undefined, `nested deeper than ${walk.limits.maxDepth} levels (decode limit maxDepth)`, true);
}

function checkKeyCount(walk: Walk, object: object, count: number): boolean {
  const most = Math.min(walk.limits.maxMapKeys, MAX_OBJECT_KEYS);
  return count <= most || fail(walk, object, undefined, `an object of ${count} keys, more than ${most} (decode limit maxMapKeys)`);
}

function fail(walk: Walk, container: object, key: string | number | MapKey | undefined, what: string, tooDeep = false): false {
  walk.problem = { container, key, what, tooDeep };
  return false;
}

/** Counts one more value (a map's keys count as the decoder counts them); the problem past the limit. */
function tooMany(walk: Walk): string | undefined {
  if (++walk.elements <= walk.limits.maxElements) return undefined;
  return `one value too many: more than ${walk.limits.maxElements} in all, keys included (decode limit maxElements)`;
}

function keyProblem(key: string): string | undefined {
  if (key === '__proto__') return 'the key "__proto__" (the receiver refuses it: msgpackr, guarding the prototype, would decode it renamed "__proto_")';
  if (!isWellFormed(key)) return 'a key with a lone surrogate (UTF-8 has none: it would arrive as U+FFFD)';
  return undefined;
}

function scalarProblem(value: unknown, limits: DecodeLimits): string | undefined {
  switch (typeof value) {
    case 'function':
    case 'symbol':
      return `a ${typeof value} (msgpack has no value for it)`;
    case 'bigint': {
      // msgpackr writes integers beyond 64 bits as an extension of their bytes; the receiver
      // refuses more than maxBigIntBytes of them.
      if (value >= MIN_INT64 && value <= MAX_UINT64) return undefined;
      const bytes = Math.ceil(((value < 0n ? -value : value).toString(16).length * 4 + 1) / 8);
      return bytes > limits.maxBigIntBytes ? `an integer of ${bytes} bytes, more than ${limits.maxBigIntBytes} (decode limit maxBigIntBytes)` : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The path from `root` (named `name`) to `target`, depth first as the walk went; undefined when
 * `target` is not found within a bounded search. On a cycle it names the reference back.
 */
function pathTo(root: object, name: string, target: object): string | undefined {
  if (root === target) return name;
  const stack: Array<{ value: unknown; path: string }> = [{ value: root, path: name }];
  let visited = 0;
  while (stack.length > 0 && ++visited < MAX_SEARCHED) {
    const { value, path } = stack.pop()!;
    if (value === target) return path;
    if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) continue;
    const children: Array<{ value: unknown; path: string }> = [];
    if (Array.isArray(value)) value.forEach((item, i) => children.push({ value: item, path: member(path, i) }));
    else if (value instanceof Map) [...value].forEach(([key, item], index) => children.push({ value: item, path: member(path, { index, key, of: 'value' }) }));
    else for (const key of Object.keys(value)) children.push({ value: (value as Record<string, unknown>)[key], path: member(path, key) });
    // Reversed so that the first child is searched first, as the walk went.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return undefined;
}

/** How many values {@link pathTo} looks at before giving up on naming the path. */
const MAX_SEARCHED = 1_000_000;

/** The path of member `key` of `parent`: an index, a property, a Map's key or value. */
function member(parent: string, key: string | number | MapKey): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (typeof key === 'object') {
    return key.of === 'key' ? `${parent}.keys()[${key.index}]` : `${parent}.get(${typeof key.key === 'string' ? JSON.stringify(key.key) : `#${key.index}`})`;
  }
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

function refuse(target: PayloadTarget, path: string, what: string): never {
  throw refusal(target, `${path} is ${what}`, path);
}

/** As encodeFailure words it: INVALID_ARGUMENT for a request (never sent), INTERNAL for a response. */
function refusal(target: PayloadTarget, reason: string, path?: string): RpcError {
  const code = target.kind === 'request' ? RpcCode.INVALID_ARGUMENT : RpcCode.INTERNAL;
  return new RpcError(
    code,
    `cannot encode the ${target.kind} of ${target.service}.${target.method} as msgpack: ${reason}`,
    path === undefined ? {} : { details: { path } },
  );
}
