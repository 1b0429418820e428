import { RpcCode, RpcError } from '../errors/errors.js';
import type { ClientStream } from '../transport/client-stream.js';

/** How a call was consumed: awaited (unary) or iterated (server streaming). */
export type CallMode = 'unary' | 'stream';

/** Starts a call in the given mode: the result for unary, the open stream for streaming. */
export type CallStarter = (mode: CallMode) => Promise<unknown>;

/**
 * What a proxy method returns: awaitable like a promise (unary methods) and iterable with
 * `for await` (server-streaming methods). TypeScript shows only the side the service
 * interface declares.
 *
 * The wire needs to know which one before the request is sent, and a proxy built from an
 * erased TypeScript interface cannot know. So the call starts in a microtask: if it was
 * iterated in the same tick it was made (`for await (const t of llm.generate(…))` does that),
 * it starts as a stream; otherwise as a unary call — so `const p = api.get(x)` starts at once
 * even if `p` is awaited later. Iterating a call that already started as unary is an error
 * that says how to fix it, as is awaiting a streaming method (the provider answers
 * FAILED_PRECONDITION) or iterating a unary one.
 */
export class RpcCall<T = unknown> implements Promise<T>, AsyncIterable<unknown> {
  readonly [Symbol.toStringTag] = 'RpcCall';
  readonly #start: CallStarter;
  readonly #label: string;
  #mode: CallMode | undefined;
  #unary: Promise<T> | undefined;
  #stream: Promise<ClientStream> | undefined;

  constructor(start: CallStarter, label: string) {
    this.#start = start;
    this.#label = label;
    queueMicrotask(() => {
      if (this.#mode === undefined) void this.#startUnary();
    });
  }

  then<R1 = T, R2 = never>(
    onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#startUnary().then(onFulfilled, onRejected);
  }

  catch<R = never>(onRejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.#startUnary().catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<T> {
    return this.#startUnary().finally(onFinally);
  }

  /** The stream's trailer (the provider generator's return value); only for streaming calls. */
  get trailer(): Promise<unknown> {
    if (this.#stream === undefined) {
      return Promise.reject(new RpcError(RpcCode.FAILED_PRECONDITION, `${this.#label}: trailer is only available on an iterated (streaming) call`));
    }
    return this.#stream.then((stream) => stream.trailer);
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    if (this.#mode === 'unary') {
      throw new RpcError(
        RpcCode.FAILED_PRECONDITION,
        `${this.#label} already started as a unary call: iterate a streaming call in the same tick you make it, e.g. for await (const chunk of proxy.${this.#label.split('.').pop()}(request))`,
      );
    }
    if (this.#mode === 'stream') throw new RpcError(RpcCode.FAILED_PRECONDITION, `${this.#label}: a stream can be iterated only once`);
    this.#mode = 'stream';
    const opened = this.#start('stream') as Promise<ClientStream>;
    opened.catch(() => {});
    this.#stream = opened;
    let inner: AsyncIterator<unknown> | undefined;
    const iterator = async (): Promise<AsyncIterator<unknown>> => (inner ??= (await opened)[Symbol.asyncIterator]());
    return {
      next: async () => (await iterator()).next(),
      return: async (value?: unknown) => {
        const stream = await opened.catch(() => undefined);
        if (stream === undefined) return { done: true, value };
        return (await iterator()).return!(value);
      },
    };
  }

  #startUnary(): Promise<T> {
    if (this.#unary !== undefined) return this.#unary;
    if (this.#mode === 'stream') {
      this.#unary = Promise.reject(new RpcError(RpcCode.FAILED_PRECONDITION, `${this.#label} is being iterated as a stream; it cannot also be awaited`));
    } else {
      this.#mode = 'unary';
      this.#unary = this.#start('unary') as Promise<T>;
    }
    return this.#unary;
  }
}
