/*
 * A promise and its settle functions without a closure per promise. Node 20 has no
 * Promise.withResolvers, and `new Promise((resolve, reject) => …)` allocates the executor and
 * its context for every call on the hot path.
 */

/** The settle functions of the promise {@link newPromise} made last; read them at once. */
export const settlers: { resolve: (value: unknown) => void; reject: (reason: unknown) => void } = { resolve: () => {}, reject: () => {} };

function capture(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  settlers.resolve = resolve as (value: unknown) => void;
  settlers.reject = reject;
}

/**
 * A new pending promise; its settle functions are in {@link settlers} until the next call, so
 * the caller takes them in the same synchronous step:
 * `const p = newPromise<T>(); const { resolve, reject } = settlers;`.
 */
export function newPromise<T>(): Promise<T> {
  return new Promise<T>(capture);
}
