import { invalidOption, show } from './validate.js';

/** Options passed to an extension factory; each factory validates its own. */
export type ExtensionOptions = Readonly<Record<string, unknown>>;

/**
 * Makes one extension from its options. It must validate `options` and throw a TypeError
 * naming the bad key, the bad value and what is allowed (see `src/common/validate.ts`).
 */
export type ExtensionFactory<T> = (options: ExtensionOptions) => T;

/**
 * How configuration chooses an extension: by name (`'p2c'`), by name with options
 * (`{ type: 'p2c', options: { … } }`), or by passing a ready instance.
 */
export type ExtensionSpec<T> = string | { readonly type: string; readonly options?: ExtensionOptions } | T;

/** Options of {@link ExtensionRegistry.register}. */
export interface RegisterOptions {
  /** Replace an existing extension of the same name; without it a clash is an error. */
  override?: boolean;
  /** A value no other extension of this point may claim, e.g. a serializer's wire id. */
  uniqueKey?: string | number;
}

/**
 * A built-in implementation as its extension folder lists it (`loadbalance/builtins.ts`, …):
 * the name it is registered under (the implementation file's `TYPE_NAME`), its factory, and its
 * registration options. The application context registers every folder's list in order.
 */
export interface BuiltinExtension<T> {
  readonly name: string;
  readonly factory: ExtensionFactory<T>;
  readonly options?: RegisterOptions;
}

interface Entry<T> {
  readonly factory: ExtensionFactory<T>;
  readonly uniqueKey: string | number | undefined;
}

/**
 * The named implementations of one extension point (serializer, transport, registry,
 * loadbalance, cluster, filter). Owned by a {@link ShuttleContext}, never by a module, so two
 * clients in one process can have different plugins and tests never share state.
 */
export class ExtensionRegistry<T> {
  /** The extension point's name, used in every error message. */
  readonly point: string;
  readonly #isInstance: (value: unknown) => value is T;
  readonly #keyName: string | undefined;
  readonly #entries = new Map<string, Entry<T>>();

  /**
   * @param point the extension point's name, e.g. `loadbalance`
   * @param isInstance tells a ready-made instance from a `{ type, options }` spec
   * @param keyName when set, every registration must give a `uniqueKey` (named so in errors,
   *   e.g. "wire id" for serializers)
   */
  constructor(point: string, isInstance: (value: unknown) => value is T, keyName?: string) {
    this.point = point;
    this.#isInstance = isInstance;
    this.#keyName = keyName;
  }

  /**
   * Adds an implementation. Throws when the name is taken (unless `override`), when the name is
   * not a simple identifier, or when `uniqueKey` is claimed by another name.
   */
  register(name: string, factory: ExtensionFactory<T>, options: RegisterOptions = {}): void {
    if (typeof name !== 'string' || !/^[a-z][a-z0-9._-]{0,63}$/i.test(name)) {
      throw invalidOption(`${this.point} extension name`, name, 'letters, digits, ".", "_" or "-", starting with a letter, at most 64');
    }
    if (typeof factory !== 'function') throw invalidOption(`${this.point} ${name} factory`, factory, 'a function (options) => extension');
    if (this.#entries.has(name) && options.override !== true) {
      throw new TypeError(
        `shuttle-rpc: ${this.point} "${name}" is already registered; a plugin may replace it only with register(name, factory, { override: true })`,
      );
    }
    if (this.#keyName !== undefined && options.uniqueKey === undefined) {
      throw new TypeError(`shuttle-rpc: ${this.point} "${name}" must be registered with its ${this.#keyName}: register(name, factory, { uniqueKey })`);
    }
    if (options.uniqueKey !== undefined) {
      for (const [other, entry] of this.#entries) {
        if (other !== name && entry.uniqueKey === options.uniqueKey) {
          throw new TypeError(
            `shuttle-rpc: ${this.point} "${name}" claims ${this.#keyName ?? 'key'} ${show(options.uniqueKey)}, already claimed by "${other}"`,
          );
        }
      }
    }
    this.#entries.set(name, { factory, uniqueKey: options.uniqueKey });
  }

  /** Whether an implementation called `name` is registered. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The registered names, in registration order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** The unique key `name` was registered with, if any. */
  uniqueKey(name: string): string | number | undefined {
    return this.#entries.get(name)?.uniqueKey;
  }

  /**
   * Resolves a spec to an instance: an instance is returned as is; a name or `{ type, options }`
   * is created by its factory. `key` names the configuration key in errors.
   */
  create(spec: ExtensionSpec<T>, key: string = this.point): T {
    if (typeof spec === 'string') return this.#make(spec, {}, key);
    if (this.#isInstance(spec)) return spec;
    if (spec !== null && typeof spec === 'object' && typeof (spec as { type?: unknown }).type === 'string') {
      const { type, options, ...rest } = spec as { type: string; options?: unknown };
      if (Object.keys(rest).length > 0) {
        throw new TypeError(`shuttle-rpc: unknown option ${key}.${Object.keys(rest)[0]} (known: type, options)`);
      }
      if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
        throw invalidOption(`${key}.options`, options, 'an object');
      }
      return this.#make(type, (options ?? {}) as ExtensionOptions, key);
    }
    throw invalidOption(key, spec, `a ${this.point} name (${this.names().join(', ')}), { type, options }, or an instance`);
  }

  /** A copy with the same implementations, for a context derived from this one. */
  clone(): ExtensionRegistry<T> {
    const copy = new ExtensionRegistry<T>(this.point, this.#isInstance, this.#keyName);
    for (const [name, entry] of this.#entries) copy.#entries.set(name, entry);
    return copy;
  }

  #make(name: string, options: ExtensionOptions, key: string): T {
    const entry = this.#entries.get(name);
    if (entry === undefined) throw invalidOption(key, name, `one of the registered ${this.point} extensions: ${this.names().join(', ') || '(none)'}`);
    // A factory is a plugin's code: a failure of its own (not the TypeError it is asked to throw
    // for bad options) is named after it, and what it makes must be the extension it claims to be,
    // or the first call would fail far from the cause.
    let made: T;
    try {
      made = entry.factory(options);
    } catch (error) {
      if (error instanceof TypeError) throw error;
      throw new TypeError(`shuttle-rpc: the ${this.point} extension "${name}" (${key}) failed to start: ${textOf(error)}`, { cause: error });
    }
    if (!this.#isInstance(made)) {
      throw new TypeError(`shuttle-rpc: the ${this.point} extension "${name}" (${key}) made ${show(made)}, not a ${this.point} (its factory must return one)`);
    }
    return made;
  }
}

/** What was thrown, as text, for a value whose getters may throw (errors/ is not reachable from here). */
function textOf(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return '(a thrown value that cannot be shown as text)';
  }
}
