import { RpcCode, RpcError, thrownMessage } from '../errors/errors.js';
import type { ClientStream } from '../transport/client-stream.js';
import { newPromise, unsettled, type Settlers } from '../common/settlers.js';

/** How a call was consumed: awaited (unary) or iterated (server streaming). */
export type CallMode = 'unary' | 'stream';

/** Starts a call in the given mode: the result for unary, the open stream for streaming. */
export type CallStarter = (mode: CallMode) => Promise<unknown>;

/**
 * What a proxy method returns: a native promise of the result (unary methods) that is also
 * iterable with `for await` (server-streaming methods), with the stream's `trailer`.
 * TypeScript shows only the side the service interface declares.
 */
export type RpcCall<T = unknown> = Promise<T> & AsyncIterable<unknown> & { readonly trailer: Promise<unknown> };

/**
 * Makes the value of one proxy call.
 *
 * The wire needs to know whether a call is unary or streaming before the request is sent, and
 * a proxy built from an erased TypeScript interface cannot know. So the call starts in a
 * microtask: if it was iterated in the same tick it was made (`for await (const t of
 * llm.generate(…))` does that), it starts as a stream; otherwise as a unary call — so
 * `const p = api.get(x)` starts at once even if `p` is awaited later. Iterating a call that
 * already started as unary is an error that says how to fix it, as is awaiting a streaming
 * method (the provider answers FAILED_PRECONDITION) or iterating a unary one.
 *
 * The value is a real Promise (with two extra properties) rather than a thenable class, so
 * `await` takes V8's native fast path: a thenable costs an extra job and promise per call.
 */
export function createCall<T>(start: CallStarter, label: string): RpcCall<T> {
  const state = new CallState(start, label);
  const call = newPromise<T>(state as Settlers<T>) as RpcCall<T> & { [Symbol.asyncIterator]: () => AsyncIterator<unknown>; trailer: Promise<unknown> };
  state.call = call;
  // Plain properties, assigned in the same order on every call (one hidden class; no
  // defineProperty on the hot path); the iterator is one shared function, not a closure.
  call[Symbol.asyncIterator] = iterate;
  call.trailer = NO_TRAILER;
  (call as unknown as { [STATE]: CallState })[STATE] = state;
  queued.push(state);
  if (!drainQueued) {
    drainQueued = true;
    queueMicrotask(drain);
  }
  return call;
}

/** Where a call's state is kept on its promise. */
const STATE = Symbol('shuttle-rpc call');

/** One call's state: how to start it, in which mode it started, and how to settle its promise. */
class CallState implements Settlers<unknown> {
  mode: CallMode | undefined;
  resolve: (value: unknown) => void = unsettled;
  reject: (reason: unknown) => void = unsettled;
  call!: Promise<unknown> & { trailer: Promise<unknown> };

  constructor(
    readonly start: CallStarter,
    readonly label: string,
  ) {}
}

/*
 * Calls made since the last microtask start together in one: Node's queueMicrotask makes an
 * async resource and a bound function for every callback, so one per call cost more than the
 * rest of the proxy. A call still starts only after the code that made it has finished its
 * synchronous part, which is what decides its mode.
 */
let queued: CallState[] = [];
let drainQueued = false;

function drain(): void {
  const batch = queued;
  // Calls made while this batch starts (a filter making a call) wait for the next microtask,
  // like any other call, so they too may still be iterated first.
  queued = [];
  drainQueued = false;
  for (const state of batch) startUnary(state);
}

function startUnary(state: CallState): void {
  if (state.mode !== undefined) return;
  state.mode = 'unary';
  let started: Promise<unknown>;
  try {
    started = state.start('unary');
  } catch (error) {
    state.reject(asCallError(error, state.label));
    return;
  }
  // A call that did not start with a promise (a plugin's cluster strategy or filter broke its
  // contract) fails alone: calling `.then` on it would throw out of the microtask that starts
  // every call of this tick.
  if (!(started instanceof Promise)) {
    state.reject(new RpcError(RpcCode.INTERNAL, `${state.label} was not started: the consumer's call path returned no promise`));
    return;
  }
  started.then(state.resolve, (error: unknown) => {
    // The provider says the method streams: the caller's code treats the call as a stream (it
    // read `trailer`, or iterates it later) and may never await it, and the error it meets
    // there says what to do. Awaiting the call still rejects with the provider's answer.
    const failure = asCallError(error, state.label);
    if (failure instanceof RpcError && failure.details?.['methodKind'] === 'server-streaming') state.call.catch(ignore);
    state.reject(failure);
  });
}

/**
 * What a call rejects with: an Error as it is (the framework's RpcErrors, or a consumer
 * filter's own error), anything else — a string, undefined, an object, a Proxy whose traps
 * throw, which only user code (a filter, a plugin) can have thrown — as an RpcError that
 * says so, so that a caller's `catch` can always read `message` and `code`.
 */
export function asCallError(error: unknown, label: string): unknown {
  try {
    if (error instanceof Error) return error;
  } catch {
    // A Proxy whose prototype cannot be read: not an Error the caller could use.
  }
  return new RpcError(RpcCode.UNKNOWN, `${label} failed with ${thrownMessage(error)} (a consumer filter or extension threw something other than an Error)`);
}

function ignore(): void {}

function iterate(this: RpcCall | undefined): AsyncIterator<unknown> {
  const state = (this as unknown as { [STATE]?: CallState } | undefined)?.[STATE];
  if (state === undefined) throw new TypeError('shuttle-rpc: iterate a proxy call itself (for await (const chunk of call)), not a copy of its iterator method');
  const label = state.label;
  if (state.mode === 'unary') {
    // The caller consumes the call as a stream and is told so here: the unary call already
    // running must not also end the process as an unhandled rejection when it fails.
    state.call.catch(ignore);
    throw new RpcError(
      RpcCode.FAILED_PRECONDITION,
      `${label} already started as a unary call: iterate a streaming call in the same tick you make it, e.g. for await (const chunk of proxy.${label.split('.').pop()}(request))`,
    );
  }
  if (state.mode === 'stream') throw new RpcError(RpcCode.FAILED_PRECONDITION, `${label}: a stream can be iterated only once`);
  state.mode = 'stream';
  const call = state.call;
  // The promise side of a streaming call never settles with a result: it rejects, and is
  // marked handled so that a caller who only iterates never sees an unhandled rejection.
  call.catch(() => {});
  state.reject(awaitedStreamError(label));
  const opening = followStream(openStream(state));
  call.trailer = opening.trailer;
  return opening.iterator;
}

/** A stream's opening, failing with a usable error whatever the call path threw or returned. */
function openStream(state: CallState): Promise<ClientStream> {
  let started: unknown;
  try {
    started = state.start('stream');
  } catch (error) {
    return Promise.reject(asCallError(error, state.label));
  }
  if (!(started instanceof Promise)) {
    return Promise.reject(new RpcError(RpcCode.INTERNAL, `${state.label} was not started: the consumer's call path returned no promise`));
  }
  return (started as Promise<ClientStream>).catch((error: unknown) => {
    throw asCallError(error, state.label);
  });
}

/**
 * The reader's side of a stream being opened: its trailer, and an iterator that waits for the
 * open stream at its first `next()`. Failures reach the reader through `next()`, so neither
 * the opening nor the trailer counts as an unhandled rejection.
 */
export function followStream(stream: Promise<ClientStream>): { trailer: Promise<unknown>; iterator: AsyncIterator<unknown> } {
  stream.catch(() => {});
  const trailer = stream.then((open) => open.trailer);
  trailer.catch(() => {});
  const held: Abandoned = { open: undefined, inner: undefined };
  stream.then(
    (open) => {
      held.open = open;
      held.inner = inner;
      // Once the stream is over nothing is left to cancel, and the registry must let go of it:
      // the error that ended it may hold the reader's stack, and with it the iterator.
      const over = (): void => {
        held.open = undefined;
        held.inner = undefined;
      };
      open.trailer.then(over, over);
    },
    () => {},
  );
  let inner: AsyncIterator<unknown> | undefined;
  const begin = (open: ClientStream): AsyncIterator<unknown> => {
    if (inner === undefined) {
      inner = open[Symbol.asyncIterator]();
      if (held.open !== undefined) held.inner = inner;
    }
    return inner;
  };
  const iterator: AsyncIterator<unknown> = {
    // Once the stream is open, next() goes straight to it: one promise per chunk.
    next: () => (inner !== undefined ? inner.next() : stream.then((open) => begin(open).next())),
    return: async (value?: unknown) => {
      const open = await stream.catch(() => undefined);
      if (open === undefined) return { done: true, value };
      return begin(open).return!(value);
    },
  };
  abandoned.register(iterator, held);
  return { trailer, iterator };
}

/** What the registry of abandoned streams holds for a reader: the stream while it is open, never the reader's iterator. */
interface Abandoned {
  open: ClientStream | undefined;
  inner: AsyncIterator<unknown> | undefined;
}

/**
 * Streams whose reader let go of the iterator before the end (dropped it without `return()`, as
 * an iterator kept in a structure that is discarded does): cancelled on the provider, as a
 * `break` would, once the iterator is collected. Without it such a stream held its provider's
 * handler (a GPU slot) and its window of chunks until its deadline, ten minutes for the
 * gateway's generations. The stream may be a filter's wrapper of a ClientStream, so it is
 * cancelled through its own iterator; nothing here may throw (it runs outside any call).
 */
const abandoned = new FinalizationRegistry<Abandoned>((held) => {
  const open = held.open;
  if (open === undefined) return;
  try {
    const left = held.inner ?? open[Symbol.asyncIterator]();
    left.return?.().catch(() => {});
  } catch {
    // A stream that cannot be iterated again has a reader elsewhere; nothing to cancel here.
  }
});

/**
 * What awaiting a call that is being iterated rejects with: one error per method, made once.
 * Every stream rejects its promise side, and making an error per stream (with or without its
 * stack) would be the largest item of a gateway request's profile; its stack would point here,
 * not at the await, so it is made without one.
 */
function awaitedStreamError(label: string): RpcError {
  let error = awaitedStreamErrors.get(label);
  if (error === undefined) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      error = new RpcError(RpcCode.FAILED_PRECONDITION, `${label} is being iterated as a stream; it cannot also be awaited`);
    } finally {
      Error.stackTraceLimit = limit;
    }
    // Method names come from the caller's code, but a proxy takes any name: keep the cache bounded.
    if (awaitedStreamErrors.size >= 1024) awaitedStreamErrors.clear();
    awaitedStreamErrors.set(label, error);
  }
  return error;
}

const awaitedStreamErrors = new Map<string, RpcError>();

/** The trailer of a call that was not iterated: one shared, already-handled rejection. */
const NO_TRAILER: Promise<unknown> = Promise.reject(new RpcError(RpcCode.FAILED_PRECONDITION, 'trailer is only available on an iterated (streaming) call'));
NO_TRAILER.catch(() => {});
