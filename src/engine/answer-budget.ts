import { RpcCode, RpcError } from '../errors/errors.js';

/** The default of {@link AnswerBudget}'s limit: 256 MiB. */
export const DEFAULT_MAX_BUFFERED_ANSWER_BYTES = 256 * 1024 * 1024;

/**
 * The bytes of engine answers one worker holds at once before they are parsed: whole JSON
 * answers (embeddings, a completion that does not stream, `/tokenize`) and the unfinished event
 * of each stream. One answer may be large (64 MiB), but many at once must not add up: 128
 * answers of 60 MB had taken a worker to 7 GB. A reader takes bytes as they arrive, and gives
 * them back when the answer is parsed or its call ends, whichever way it ends.
 */
export class AnswerBudget {
  /** The most bytes held at once (`maxBufferedAnswerBytes`). */
  readonly limit: number;
  #used = 0;

  constructor(limit = DEFAULT_MAX_BUFFERED_ANSWER_BYTES) {
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /**
   * Takes `bytes` more for an answer that holds `held` already; throws RESOURCE_EXHAUSTED, naming
   * the answer's size and the limit, when they are not free (nothing is taken then).
   */
  take(bytes: number, held: number, what: string): void {
    if (this.#used + bytes > this.limit) {
      throw new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `engine answer to ${what} needs ${held + bytes} bytes held at once, more than is free of the worker's ${this.limit}-byte budget for answers being read (maxBufferedAnswerBytes; ${this.#used} in use)`,
      );
    }
    this.#used += bytes;
  }

  /** Gives back bytes taken. */
  release(bytes: number): void {
    this.#used -= bytes;
  }
}
