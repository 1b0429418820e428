import { hideCredentials } from './credentials.js';

/**
 * Helpers that turn bad configuration into errors naming the key, the bad value and what is
 * allowed. They throw TypeError because bad configuration is a programming error found at
 * start-up, not a call outcome.
 */

/** Renders a value for an error message without dumping whole objects, or the credentials of a URL. */
export function show(value: unknown): string {
  if (typeof value === 'string') {
    // Credentials hidden before the cut: a long password cut before its `@` would not be found.
    const shown = hideCredentials(value);
    return JSON.stringify(shown.length > 80 ? `${shown.slice(0, 77)}...` : shown);
  }
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `array(${value.length})`;
  const name = Object.getPrototypeOf(value)?.constructor?.name as string | undefined;
  if (!name || name === 'Object') return 'an object';
  return `${'AEIO'.includes(name[0]!) ? 'an' : 'a'} ${name}`;
}

/**
 * `url` with anything between `//` and `@` (a user and password) shown as `***`: what an error
 * or a log line quotes of a URL that may carry credentials.
 */
export function withoutCredentials(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//***@');
}

/** Builds the standard "invalid option" TypeError. */
export function invalidOption(key: string, value: unknown, allowed: string): TypeError {
  return new TypeError(`shuttle-rpc: invalid ${key}: ${show(value)} (allowed: ${allowed})`);
}

/** Returns `value` when it is a non-empty string of at most `max` bytes, else throws. */
export function checkName(key: string, value: unknown, max = 255): string {
  if (typeof value !== 'string' || value.length === 0 || Buffer.byteLength(value) > max) {
    throw invalidOption(key, value, `a non-empty string of at most ${max} bytes`);
  }
  return value;
}

/** Returns `value` when it is a string of at most `max` bytes (empty allowed), else throws. */
export function checkOptionalName(key: string, value: unknown, max = 255): string {
  if (value === undefined) return '';
  if (typeof value !== 'string' || Buffer.byteLength(value) > max) {
    throw invalidOption(key, value, `a string of at most ${max} bytes`);
  }
  return value;
}

/** Returns an integer within [min, max], `fallback` when undefined, else throws. */
export function checkInt(key: string, value: unknown, min: number, max: number, fallback: number): number;
export function checkInt(key: string, value: unknown, min: number, max: number): number | undefined;
export function checkInt(key: string, value: unknown, min: number, max: number, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(key, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** Returns a boolean, `fallback` when undefined, else throws. */
export function checkBool(key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidOption(key, value, 'true or false');
  return value;
}

/**
 * Throws when `options` is not a plain object (an object literal, or one with a null
 * prototype), or has a key not in `known`, so a typo never passes silently. An instance of a
 * class passed where options go (an AbortSignal given as the call options, a Map) keeps its
 * state in no own key: it would pass as empty options and be ignored.
 */
export function checkKnownKeys(where: string, options: object, known: readonly string[]): void {
  const prototype: unknown = Object.getPrototypeOf(options);
  if (prototype !== null && Object.getPrototypeOf(prototype) !== null) {
    const hint = known.includes('signal') && options instanceof AbortSignal ? '; pass a signal as { signal }' : '';
    throw new TypeError(`shuttle-rpc: ${where} must be a plain object of options (known: ${known.join(', ')}), got ${show(options)}${hint}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`shuttle-rpc: unknown option ${where}.${key} (known: ${known.join(', ')})`);
    }
  }
}

/**
 * The key list of an options interface `T`, checked against `T` when it compiles:
 * `const CLIENT_KEYS = optionKeys<ClientOptions>()(['registry', …])` fails to compile when the
 * list names a key `T` does not have (not assignable to `keyof T`) or leaves one of `T`'s keys
 * out (`missing` names it). At run time it returns the list as it is. Curried because
 * TypeScript cannot take `T` explicitly and infer the list's literal type in one call.
 */
export function optionKeys<T extends object>(): <const K extends readonly (keyof T & string)[]>(keys: K & MissingKeys<T, K>) => K {
  return (keys) => keys;
}

/** Nothing when `K` lists every key of `T`, else a property naming the keys left out. */
export type MissingKeys<T, K extends readonly PropertyKey[]> = [Exclude<keyof T, K[number]>] extends [never]
  ? unknown
  : { readonly missing: Exclude<keyof T, K[number]> };

/** The largest timer delay Node accepts; setTimeout silently turns anything larger into 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** The keys of `options` whose value is not undefined, so that merging them over configuration never erases a configured value. */
export function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** A `log` option: a function taking one line, standard error by default; throws naming `key` otherwise. */
export function checkLog(key: string, value: unknown): (line: string) => void {
  if (value === undefined) return (line) => void process.stderr.write(`${line}\n`);
  if (typeof value !== 'function') throw invalidOption(key, value, 'a function (line: string) => void');
  return value as (line: string) => void;
}
