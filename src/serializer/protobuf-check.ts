import protobuf from 'protobufjs';
import { isWellFormed } from './well-formed.js';

/*
 * protobufjs's own `verify` lets through values that then change on the way without a word: a
 * field the message does not declare is dropped; 2^40 in an int32 arrives as 0, -1 in a uint32
 * as 4294967295, -5 in a uint64 as 0, 1e40 in a float as Infinity; a Map given for a map field
 * arrives empty; a string with a lone surrogate fails the receiver's UTF-8 decoding. And it
 * refuses what would arrive exactly: a BigInt or a decimal string for a 64-bit field (the form
 * a 64-bit integer arrives in), so a value received could not be sent back.
 */

/** The largest finite float32. */
const FLOAT_MAX = 3.4028234663852886e38;

/** Integer ranges of the integer field types, as BigInt. */
const RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const LONG_TYPES = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

/** A value of a message that cannot be sent as it is: where, and what it is. */
export class MessageProblem extends Error {
  constructor(
    readonly path: string,
    readonly what: string,
  ) {
    super(`${path} ${what}`);
  }
}

/**
 * Checks `value` against message type `type` and returns the object protobufjs's `fromObject`
 * is to build the message from: the same fields, with a BigInt in a 64-bit field as its decimal
 * string (protobufjs reads those exactly). Throws a {@link MessageProblem} naming the path
 * (`request.items[2].count`) of the first value that is not a field of the message, or would
 * not arrive as it was sent: an integer outside its field's range or not an integer, a float
 * past float32, a string with a lone surrogate, bytes that are neither binary nor base64, a
 * Map or array where a message or map is declared, two members of one oneof.
 * `null` and `undefined` leave a field unset, as protobufjs does.
 */
export function prepareMessage(type: protobuf.Type, value: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw new MessageProblem(path, `is ${describe(value)}, not an object for ${type.fullName.slice(1)}`);
  const out: Record<string, unknown> = {};
  const oneofs = new Map<string, string>();
  for (const key of Object.keys(value)) {
    const item = value[key];
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (field === undefined) {
      throw new MessageProblem(member(path, key), `is not a field of ${type.fullName.slice(1)} (its fields: ${Object.keys(type.fields).join(', ') || 'none'})`);
    }
    if (item === undefined || item === null) continue;
    const oneof = field.partOf;
    if (oneof !== null) {
      const other = oneofs.get(oneof.name);
      if (other !== undefined) throw new MessageProblem(member(path, key), `is set beside ${other}, in the same oneof ${oneof.name}`);
      oneofs.set(oneof.name, key);
    }
    out[key] = prepareField(field, item, member(path, key));
  }
  return out;
}

function prepareField(field: protobuf.Field, value: unknown, path: string): unknown {
  if (field.map) {
    if (!isPlainObject(value)) throw new MessageProblem(path, `is ${describe(value)}, not a plain object for a map field`);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      const keyType = (field as unknown as protobuf.MapField).keyType;
      if (keyType !== 'string' && keyType !== 'bool') prepareScalar(keyType, /^-?\d+$/.test(key) ? BigInt(key) : key, `${path} key ${JSON.stringify(key)}`);
      if (keyType === 'string' && !isWellFormed(key)) throw new MessageProblem(`${path} key ${JSON.stringify(key)}`, 'has a lone surrogate (UTF-8 has none)');
      const item = value[key];
      if (item === undefined || item === null) continue;
      out[key] = prepareSingle(field, item, member(path, key));
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new MessageProblem(path, `is ${describe(value)}, not an array for a repeated field`);
    return value.map((item, i) => prepareSingle(field, item, `${path}[${i}]`));
  }
  return prepareSingle(field, value, path);
}

function prepareSingle(field: protobuf.Field, value: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return prepareMessage(resolved, value, path);
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) return value;
    const names = Object.entries(resolved.values)
      .map(([name, number]) => `${name} = ${number}`)
      .join(', ');
    throw new MessageProblem(path, `is ${describe(value)}, not a number of enum ${resolved.fullName.slice(1)} (${names})`);
  }
  return prepareScalar(field.type, value, path);
}

function prepareScalar(type: string, value: unknown, path: string): unknown {
  const range = RANGES[type];
  if (range !== undefined) {
    let integer: bigint | undefined;
    if (typeof value === 'number' && Number.isInteger(value)) integer = BigInt(value);
    else if (typeof value === 'bigint') integer = value;
    else if (LONG_TYPES.has(type) && typeof value === 'string' && /^-?\d+$/.test(value)) integer = BigInt(value);
    const accepted = LONG_TYPES.has(type) ? 'an integer (a number, a BigInt or a decimal string)' : 'an integer';
    if (integer === undefined) throw new MessageProblem(path, `is ${describe(value)}, not ${accepted} for ${type}`);
    if (integer < range[0] || integer > range[1]) throw new MessageProblem(path, `is ${integer}, outside ${type} (${range[0]} to ${range[1]})`);
    // A BigInt travels as its decimal string, which protobufjs reads exactly.
    return typeof value === 'bigint' ? value.toString() : value;
  }
  switch (type) {
    case 'double':
      if (typeof value !== 'number') throw new MessageProblem(path, `is ${describe(value)}, not a number for double`);
      return value;
    case 'float':
      if (typeof value !== 'number') throw new MessageProblem(path, `is ${describe(value)}, not a number for float`);
      if (Number.isFinite(value) && Math.abs(value) > FLOAT_MAX)
        throw new MessageProblem(path, `is ${value}, past float's largest (${FLOAT_MAX}): it would arrive as Infinity`);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw new MessageProblem(path, `is ${describe(value)}, not a boolean for bool`);
      return value;
    case 'string':
      if (typeof value !== 'string') throw new MessageProblem(path, `is ${describe(value)}, not a string for string`);
      if (!isWellFormed(value)) throw new MessageProblem(path, 'is a string with a lone surrogate (UTF-8 has none)');
      return value;
    case 'bytes':
      if (value instanceof Uint8Array) return value;
      if (typeof value === 'string' && BASE64.test(value)) return value;
      if (Array.isArray(value) && value.every((byte) => Number.isInteger(byte) && byte >= 0 && byte <= 255)) return value;
      throw new MessageProblem(path, `is ${describe(value)}, not bytes (a Uint8Array or Buffer, a base64 string, or an array of bytes)`);
    default:
      return value;
  }
}

/** Standard or URL-safe base64, padded or not. */
const BASE64 = /^(?:[A-Za-z0-9+/_-]{4})*(?:[A-Za-z0-9+/_-]{2}(?:==)?|[A-Za-z0-9+/_-]{3}=?)?$/;

/** Objects that are data of their own kind, never a message or a map field's entries. */
const NOT_MESSAGES: ReadonlyArray<abstract new (...args: never[]) => unknown> = [
  Map,
  Set,
  Date,
  RegExp,
  Error,
  Promise,
  WeakMap,
  WeakSet,
  ArrayBuffer,
  String,
  Number,
  Boolean,
  EventTarget,
];

/** A plain object, a protobufjs message, or a class instance whose own fields are the message's. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) return false;
  return !NOT_MESSAGES.some((type) => value instanceof type);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `a ${(value as object).constructor?.name ?? 'object'}`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'bigint') return `${value}n`;
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : `a ${typeof value}`;
}

function member(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}
