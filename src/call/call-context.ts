import type { Metadata, Peer } from './invocation.js';

/**
 * What a provider method receives as its last argument: the call's cancellation signal,
 * deadline, metadata and caller. `signal` fires when the caller cancels, its connection drops,
 * or the deadline passes; a long-running method should check it (or pass it on) so the slot is
 * freed promptly.
 */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  readonly signal: AbortSignal;
  /**
   * Absolute local deadline on the `monotonicNow()` clock (epoch ms when the process started,
   * then never stepped: time left is `deadline - monotonicNow()`), or undefined when the caller
   * set none.
   */
  readonly deadline: number | undefined;
  /** The caller's metadata; a null-prototype object of string values. */
  readonly metadata: Readonly<Metadata>;
  readonly peer: Peer;
}
