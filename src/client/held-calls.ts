import { listenAbort, unlistenAbort } from '../common/abort-listeners.js';
import { DeadlineHeap, liveDeadlines } from '../common/deadline-heap.js';
import { newPromise, unsettled, type Settlers } from '../common/settlers.js';
import { createContextKey } from '../call/context-values.js';
import type { Invocation } from '../call/invocation.js';
import { RpcCode, RpcError } from '../errors/errors.js';

/** The watch of the call being filtered, so the end of the chain can mark it as passed on. */
export const HELD = createContextKey<HeldCall | undefined>(undefined, 'shuttle-rpc filtered call');

/**
 * Ends consumer calls at their deadline and at their caller's abort while the consumer filters
 * have them. The transport times a call only once the chain has passed it on; a filter that
 * never calls `next`, or holds the call after `next` answered, would otherwise keep the
 * caller waiting for good. One deadline heap (one timer) serves every call of a reference,
 * as the connections do, so a filtered call costs a heap entry, not a timer.
 */
export class HeldCalls {
  readonly #pending = new Map<number, HeldCall>();
  readonly #heap: DeadlineHeap;
  readonly #filters: string;
  #nextId = 0;

  /** @param filterNames the reference's consumer filters, in chain order, for the errors */
  constructor(filterNames: readonly string[]) {
    this.#filters = filterNames.join(', ');
    this.#heap = new DeadlineHeap({
      deadlineOf: (id) => this.#pending.get(id)?.deadline,
      live: () => liveDeadlines(this.#pending),
      liveCount: () => this.#pending.size,
      expire: (id) => this.#pending.get(id)?.expire(),
    });
  }

  /**
   * Runs `chain` on `invocation` and returns its result, or a rejection at the invocation's
   * deadline or signal if the chain has not settled by then (a stream that opens later is
   * cancelled). `chain` is called after the watch is set up, so its end can mark it.
   */
  watch(invocation: Invocation, chain: (invocation: Invocation) => Promise<unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const held = new HeldCall(this, id, invocation);
    const promise = newPromise(held);
    this.#pending.set(id, held);
    if (invocation.deadline !== undefined) this.#heap.add(id, invocation.deadline);
    if (invocation.signal !== undefined) held.listen(invocation.signal);
    invocation.values.set(HELD, held);
    let result: Promise<unknown>;
    try {
      result = chain(invocation);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => held.settled(value, false),
      (error: unknown) => held.settled(error, true),
    );
    return promise;
  }

  /** @internal */
  forget(id: number): void {
    this.#pending.delete(id);
  }

  /** @internal the filters a held call was in, for its error */
  get filters(): string {
    return this.#filters;
  }
}

/** One filtered call being watched; settles its caller's promise once. */
export class HeldCall implements Settlers<unknown> {
  resolve: (value: unknown) => void = unsettled;
  reject: (reason: unknown) => void = unsettled;
  /** Whether the chain passed the call on to the cluster (the transport then times it too). */
  passedOn = false;
  readonly deadline: number | undefined;
  #over = false;
  #onAbort: (() => void) | undefined;

  constructor(
    private readonly owner: HeldCalls,
    private readonly id: number,
    private readonly invocation: Invocation,
  ) {
    this.deadline = invocation.deadline;
  }

  listen(signal: AbortSignal): void {
    this.#onAbort = () => this.#fail(new RpcError(RpcCode.CANCELLED, `${this.#label()} was cancelled by the caller`, { cause: signal.reason }));
    listenAbort(signal, this.#onAbort);
  }

  expire(): void {
    const where = this.passedOn
      ? `a consumer filter (${this.owner.filters}) still held it after passing it on`
      : `it was still in its consumer filters (${this.owner.filters}): none passed it on in time`;
    this.#fail(new RpcError(RpcCode.DEADLINE_EXCEEDED, `${this.#label()} did not complete before its deadline; ${where}`));
  }

  /** The chain's outcome: handed to the caller, or, after the caller was failed, let go of. */
  settled(outcome: unknown, failed: boolean): void {
    if (this.#over) {
      if (!failed) cancelLate(outcome);
      return;
    }
    this.#end();
    if (failed) this.reject(outcome);
    else this.resolve(outcome);
  }

  #fail(error: RpcError): void {
    if (this.#over) return;
    this.#end();
    this.reject(error);
  }

  #end(): void {
    this.#over = true;
    this.owner.forget(this.id);
    if (this.#onAbort !== undefined) unlistenAbort(this.invocation.signal, this.#onAbort);
  }

  #label(): string {
    return `${this.invocation.service}.${this.invocation.method}`;
  }
}

/** A stream that opened after its caller was failed: nobody will read it, so it is cancelled. */
function cancelLate(value: unknown): void {
  try {
    const iterate = (value as { [Symbol.asyncIterator]?: unknown } | null | undefined)?.[Symbol.asyncIterator];
    if (typeof iterate !== 'function') return;
    const iterator = (iterate as () => AsyncIterator<unknown>).call(value);
    iterator.return?.()?.catch(() => {});
  } catch {
    // A filter's own stream wrapper that cannot be iterated again: nothing more to do.
  }
}
