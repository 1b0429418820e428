/** How a stream's iteration ended, for {@link onStreamEnd}. */
export interface StreamEnd {
  /** What the stream failed with; undefined when it ended normally or the reader left. */
  readonly error?: unknown;
  /** The reader stopped before the end (`return()`: a cancel, a `break`). */
  readonly early: boolean;
  /** Chunks delivered. */
  readonly chunks: number;
}

/**
 * Wraps a server stream so that `onEnd` runs exactly once when its iteration is over: at its
 * end, on its error, or when the reader stops early — for filters whose work spans the whole
 * stream (a concurrency slot, a tracing span), not only its opening. What else the stream
 * offers (the consumer's `trailer`) stays reachable: the wrapper inherits from it. A value
 * that is not an async iterable is returned as is, after `onEnd`.
 */
export function onStreamEnd<T>(stream: AsyncIterable<T>, onEnd: (end: StreamEnd) => void): AsyncIterable<T> {
  let ended = false;
  let chunks = 0;
  const end = (outcome: Omit<StreamEnd, 'chunks'>): void => {
    if (ended) return;
    ended = true;
    onEnd({ ...outcome, chunks });
  };
  if (stream === null || typeof stream !== 'object' || typeof stream[Symbol.asyncIterator] !== 'function') {
    end({ early: false });
    return stream;
  }
  const wrapped = Object.create(stream) as AsyncIterable<T>;
  (wrapped as { [Symbol.asyncIterator]: () => AsyncIterator<T> })[Symbol.asyncIterator] = () => {
    const iterator = stream[Symbol.asyncIterator]();
    return {
      next: (...args: [] | [unknown]) =>
        iterator.next(...args).then(
          (step) => {
            if (step.done === true) end({ early: false });
            else chunks++;
            return step;
          },
          (error: unknown) => {
            end({ error, early: false });
            throw error;
          },
        ),
      return: (value?: unknown) => {
        end({ early: true });
        return iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: value as never });
      },
    };
  };
  return wrapped;
}
