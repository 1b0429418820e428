/*
 * Typed values that travel with one call through every filter (connect-es's context values):
 * a layer that needs to hand something to a later layer of the same call — the consumer's
 * transport invocation, the provider's running call, "admission already checked" — declares a
 * key for it instead of smuggling it under a property of its own. Filters copy a call with a
 * spread, which keeps the same `values`, so what one layer set the next one finds.
 */

/** A key of a per-call value, with the value read when none was set. Its identity is the key. */
export interface ContextKey<T> {
  readonly id: symbol;
  readonly defaultValue: T;
  readonly description: string;
}

/** Makes a key; `description` names it in debuggers and errors. */
export function createContextKey<T>(defaultValue: T, description: string): ContextKey<T> {
  return { id: Symbol(description), defaultValue, description };
}

/** The values of one call, by key. */
export interface ContextValues {
  /** The value set for `key`, or its default. */
  get<T>(key: ContextKey<T>): T;
  /** Sets the value of `key` for this call (and every copy of the call that shares these values). */
  set<T>(key: ContextKey<T>, value: T): this;
  /** Whether a value was set for `key`. */
  has(key: ContextKey<unknown>): boolean;
  /** Forgets the value of `key`. */
  delete(key: ContextKey<unknown>): this;
}

/**
 * One small object per call: the values are its own symbol-keyed properties (no Map behind it,
 * since a call sets one or two).
 */
class Values implements ContextValues {
  get<T>(key: ContextKey<T>): T {
    return key.id in this ? ((this as unknown as Record<symbol, T>)[key.id] as T) : key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    (this as unknown as Record<symbol, T>)[key.id] = value;
    return this;
  }

  has(key: ContextKey<unknown>): boolean {
    return key.id in this;
  }

  delete(key: ContextKey<unknown>): this {
    delete (this as unknown as Record<symbol, unknown>)[key.id];
    return this;
  }
}

/** Fresh, empty values for one call. */
export function createContextValues(): ContextValues {
  return new Values();
}
