import type { ServerResponse } from 'node:http';
import { BadRequest, GATEWAY_SHUTTING_DOWN } from './openai-errors.js';

/** What a gateway's drain waited for, and what it had to cut. */
export interface DrainOutcome {
  /** HTTP requests open when the drain began (streams, answers being computed, requests queued for a slot). */
  readonly open: number;
  /** Of those, the ones still open at the drain timeout: their calls were cancelled and they were ended. */
  readonly cut: number;
  /** How long the drain took, ms. */
  readonly waitedMs: number;
}

/**
 * A gateway's graceful stop. While it drains, a new request is answered 503 with Retry-After
 * (the listener stays open, so a client or load balancer still sending here is told to go
 * elsewhere instead of finding the port closed), and the requests already open — token streams
 * above all — run on until they end or `timeoutMs` passes; then {@link signal} aborts, their
 * worker calls are cancelled and each is ended with an answer of its own (a stream with a last
 * SSE error event and `[DONE]`), so no client ever reads a connection reset.
 */
export class GatewayDrain {
  readonly #open = new Set<ServerResponse>();
  readonly #stop = new AbortController();
  #draining = false;
  #idle: (() => void) | undefined;

  /** Aborts when the drain time runs out: every request still open must end now. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Whether the gateway is draining (new requests are refused). */
  get draining(): boolean {
    return this.#draining;
  }

  /** Counts `response` as open until it closes (finished, or its client gone). */
  track(response: ServerResponse): void {
    this.#open.add(response);
    response.once('close', () => {
      this.#open.delete(response);
      if (this.#open.size === 0) this.#idle?.();
    });
  }

  /** The refusal of a request that came while draining: 503, Retry-After, and the reason. */
  refusal(retryAfterSeconds: number): BadRequest {
    return new BadRequest(
      'the gateway is shutting down; retry after the Retry-After delay, on another gateway',
      null,
      503,
      GATEWAY_SHUTTING_DOWN,
      retryAfterSeconds,
    );
  }

  /**
   * Refuses new requests from now on and waits until every open request has ended, or
   * `timeoutMs` has passed; then aborts {@link signal} for those left and waits (at most
   * `graceMs` more) for them to write their last words.
   */
  async drain(timeoutMs: number, graceMs = 1000): Promise<DrainOutcome> {
    const started = performance.now();
    this.#draining = true;
    const open = this.#open.size;
    const idle = new Promise<void>((resolve) => {
      this.#idle = resolve;
      if (this.#open.size === 0) resolve();
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    const cut = timedOut ? this.#open.size : 0;
    if (timedOut) {
      this.#stop.abort(
        new BadRequest(
          `the gateway shut down: its drain time (drainTimeoutMs ${timeoutMs} ms) ran out before the request finished`,
          null,
          503,
          GATEWAY_SHUTTING_DOWN,
        ),
      );
      await Promise.race([idle, new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())]);
    }
    return { open, cut, waitedMs: Math.round(performance.now() - started) };
  }
}
