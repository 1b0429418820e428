import { callScopesArmed } from '../call/call-scope.js';
import type { Metadata, Peer } from '../call/invocation.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import { deadlineError, neverSent } from './call-limits.js';
import { LazyAbort } from './lazy-abort.js';
import { chunkTurn } from './turn-budget.js';
import type { CallHandler, ProviderCallInfo, ResolvedMethod } from './transport.js';
import { monotonicNow } from '../common/clock.js';

/*
 * One call on the provider, the same on every transport. Each transport reads its wire (the
 * route, metadata, caller's deadline and payload) and writes its answers; what happens between
 * is written here once, so that both wires check the same things in the same order and say the
 * same words:
 *
 *   1. refuse new calls while closing ........... goingAway()
 *   2. find the method, admission filters first .. CallHandler.resolve(head), before any decoding
 *   3. unary or stream as the method is .......... checkMode()
 *   4. decode the request ........................ the transport's serializer or protobuf route
 *   5. the deadline, refused when already past ... callDeadline()
 *   6. start it .................................. new <transport>Call(...), a ProviderCall
 *   7. run the method, hand its outcome to the wire: ProviderCall.runUnary() / runStream(),
 *      unless the call was aborted meanwhile (a CANCEL read with its request)
 */

/** The refusal of a call that arrives while the provider closes: never run, safe to retry elsewhere. */
export function goingAway(): RpcError {
  return neverSent('provider is going away');
}

/** The error for a call made as a stream to a unary method or the other way round; undefined when it matches. */
export function checkMode(method: ResolvedMethod, stream: boolean): RpcError | undefined {
  if (stream === method.stream) return undefined;
  return new RpcError(
    RpcCode.FAILED_PRECONDITION,
    method.stream
      ? `${method.service}.${method.method} is a server-streaming method: iterate the call (for await (const chunk of proxy.${method.method}(…)))`
      : `${method.service}.${method.method} is a unary method: await the call instead of iterating it`,
    { details: { methodKind: method.stream ? 'server-streaming' : 'unary' } },
  );
}

/**
 * The call's local deadline: the earlier of the caller's (`callerDeadline`, absolute, local
 * clock) and the method's own limit from now. A call whose deadline has passed already is
 * refused DEADLINE_EXCEEDED, never started.
 */
export function callDeadline(method: ResolvedMethod, callerDeadline: number | undefined, now = monotonicNow()): number | undefined | RpcError {
  const own = method.timeoutMs === undefined ? undefined : now + method.timeoutMs;
  const deadline = callerDeadline === undefined ? own : own === undefined ? callerDeadline : Math.min(callerDeadline, own);
  if (deadline !== undefined && deadline <= now) {
    return new RpcError(RpcCode.DEADLINE_EXCEEDED, `${method.service}.${method.method} arrived after its deadline; not started`);
  }
  return deadline;
}

/**
 * A started call: its cancellation (a {@link LazyAbort}: the AbortSignal is made only for a
 * handler that asks), deadline, metadata and caller, which is what the method is handed
 * ({@link ProviderCallInfo}), and the running of the method. A transport subclasses it with
 * its wire: how an answer, an error, a stream chunk and a stream's end are written, and when a
 * stream may send more. One object per call carries all of it.
 */
export abstract class ProviderCall extends LazyAbort implements ProviderCallInfo {
  readonly method: ResolvedMethod;
  readonly meta: Metadata;
  readonly peer: Peer;
  readonly #handler: CallHandler;

  constructor(handler: CallHandler, method: ResolvedMethod, deadline: number | undefined, meta: Metadata, peer: Peer) {
    super(deadline);
    this.#handler = handler;
    this.method = method;
    this.meta = meta;
    this.peer = peer;
  }

  /** Writes a unary call's result (not called once the call was aborted). */
  protected abstract answer(value: unknown): void;
  /** Writes the error that ends the call (not called once the caller has left). */
  protected abstract fail(error: RpcError): void;
  /** The call is over, its answer written or given up: release what it held. Called exactly once. */
  protected abstract ended(): void;

  /**
   * Streams: undefined when the next chunk may be pulled from the handler now; otherwise a
   * promise that settles when there may be room (more credit, a drained socket) or the call
   * is aborted — the caller asks again.
   */
  protected room(): Promise<void> | undefined {
    return undefined;
  }

  /**
   * Streams: like {@link room}, asked again between pulling a value and writing it. By default
   * the same question; a wire that takes the one value already pulled anyway says undefined.
   */
  protected roomToWrite(): Promise<void> | undefined {
    return this.room();
  }

  /** Streams: writes one chunk; a promise when the wire must be waited for before the next. */
  protected chunk(_value: unknown): Promise<void> | undefined {
    throw new RpcError(RpcCode.INTERNAL, `${this.method.service}.${this.method.method}: this transport does not stream`);
  }

  /** Streams: writes the successful end, with the generator's return value (undefined for none). */
  protected end(_value: unknown): void {
    throw new RpcError(RpcCode.INTERNAL, `${this.method.service}.${this.method.method}: this transport does not stream`);
  }

  /**
   * Whether the call was aborted before its method started — its caller cancelled or gave up,
   * or its deadline passed, while it waited to start — and so is not started: a caller still
   * listening is told why, and the call ends. A provider whose event loop was blocked reads each
   * request with its caller's CANCEL behind it; started anyway, every such non-idempotent call
   * ran after its caller had been told DEADLINE_EXCEEDED.
   */
  #abortedBeforeStart(): boolean {
    if (!this.aborted) return false;
    try {
      if (!this.callerLeft) this.fail(isDeadline(this.reason) ? deadlineError(this.method) : RpcError.from(this.reason, RpcCode.CANCELLED));
    } finally {
      this.ended();
    }
    return true;
  }

  /** Runs a unary method and hands its result or error to the wire (not started once aborted). */
  runUnary(request: unknown): void {
    if (this.#abortedBeforeStart()) return;
    // Two callbacks and no finally(): with call scopes on, every promise of the process pays
    // AsyncLocalStorage's hooks, and a unary call needs only the one its handler returns and
    // the one its then() makes.
    this.method.invoke(request, this).then(
      (value) => {
        try {
          if (!this.aborted) this.answer(value);
        } finally {
          this.ended();
        }
      },
      (error: unknown) => {
        try {
          // After a cancel the caller has stopped listening; the error has nowhere to go. Past
          // the provider's own deadline the handler's error is mostly that abort's echo (a
          // nested call it cancelled): the deadline is what is reported, as for a stream.
          if (!this.callerLeft) this.fail(this.aborted && isDeadline(this.reason) ? deadlineError(this.method) : this.#callerError(error));
        } finally {
          this.ended();
        }
      },
    );
  }

  /**
   * Drives a streaming method: pulls a value only when the wire has room, writes each at once
   * (no batching timer: the first token leaves as soon as it is yielded), and ends with the
   * generator's return value. When the call is aborted (cancel, deadline, dropped connection)
   * it stops pulling and calls the generator's `return()`, so the handler's `finally` blocks
   * run and its slot is freed; a caller that left gets nothing more, a deadline is reported.
   */
  runStream(request: unknown): Promise<void> {
    if (this.#abortedBeforeStart()) return Promise.resolve();
    // Entered once for the whole pump: its awaits keep the scope, and so do the handler's
    // generator steps it drives, without entering it again at every value.
    const inScope = this.method.inScope;
    if (inScope === undefined) return this.#stream(request, undefined).finally(() => this.ended());
    // While the process follows no scopes (call-scope.ts), each step is entered on its own, so
    // a client the generator creates finds its call, and steps after that are followed.
    const stepScope = callScopesArmed() ? undefined : inScope;
    return inScope(this, () => this.#stream(request, stepScope)).finally(() => this.ended());
  }

  async #stream(request: unknown, stepScope: ResolvedMethod['inScope']): Promise<void> {
    let iterator: AsyncIterator<unknown> | undefined;
    let finished = false;
    try {
      const iterable = (await this.method.invoke(request, this)) as AsyncIterable<unknown>;
      if (iterable === null || typeof iterable !== 'object' || typeof iterable[Symbol.asyncIterator] !== 'function') {
        throw new RpcError(
          RpcCode.INTERNAL,
          `${this.method.service}.${this.method.method} is declared stream: true but did not return an async iterable (use an async generator method)`,
        );
      }
      iterator = iterable[Symbol.asyncIterator]();
      for (;;) {
        // No await (no promise) while there is room, which is almost always.
        let wait = this.#waitForRoom();
        while (wait !== undefined) {
          await wait;
          wait = this.#waitForRoom();
        }
        if (this.aborted) break;
        // Every stream of the process shares a budget of chunks per event-loop turn (turn-budget.ts).
        const turn = chunkTurn();
        if (turn !== undefined) {
          await turn;
          if (this.aborted) break;
        }
        const step = await (stepScope === undefined ? iterator.next() : stepScope(this, () => iterator!.next()));
        // Asked again after the handler's await, just before writing: many streams woken by
        // one drain must not all write past the budget.
        wait = this.aborted ? undefined : this.roomToWrite();
        while (wait !== undefined) {
          await wait;
          wait = this.aborted ? undefined : this.roomToWrite();
        }
        if (this.aborted) break;
        if (step.done === true) {
          finished = true;
          this.end(step.value);
          return;
        }
        const written = this.chunk(step.value);
        if (written !== undefined) await written;
      }
    } catch (error) {
      if (!this.aborted) {
        finished = true;
        this.fail(this.#callerError(error));
      }
    } finally {
      if (!finished) await iterator?.return?.().catch(() => {});
    }
    // Only an abort leaves unfinished: the provider's own deadline is reported.
    if (!finished && !this.callerLeft && isDeadline(this.reason)) this.fail(deadlineError(this.method));
  }

  /** What to wait for before the next chunk: nothing once aborted or while there is room. */
  #waitForRoom(): Promise<void> | undefined {
    return this.aborted ? undefined : this.room();
  }

  #callerError(error: unknown): RpcError {
    return this.#handler.toCallerError?.(this.method, error) ?? RpcError.from(error);
  }
}

function isDeadline(reason: unknown): boolean {
  return reason instanceof RpcError && reason.code === RpcCode.DEADLINE_EXCEEDED;
}
