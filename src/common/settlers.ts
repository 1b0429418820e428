/*
 * A promise whose settle functions go into an object the caller already has, without a
 * closure per promise. Node 20 has no Promise.withResolvers, and `new Promise((resolve,
 * reject) => …)` allocates the executor and its context for every call on the hot path.
 */

/** Where {@link newPromise} puts the settle functions of the promise it makes. */
export interface Settlers<T> {
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

let lastResolve: ((value: never) => void) | undefined;
let lastReject: ((reason: unknown) => void) | undefined;

function capture(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  lastResolve = resolve;
  lastReject = reject;
}

/** A new pending promise; its settle functions are put into `into` (and kept nowhere else). */
export function newPromise<T>(into: Settlers<T>): Promise<T> {
  const promise = new Promise<T>(capture);
  into.resolve = lastResolve as (value: T) => void;
  into.reject = lastReject!;
  lastResolve = undefined;
  lastReject = undefined;
  return promise;
}

/** A placeholder settle function for an object made before its promise. */
export function unsettled(): void {}
