import { linkSignals } from '../common/abort-listeners.js';

/**
 * Failed checks in a row after which the engine counts as down: one may be a blip (a long
 * garbage collection, a check that met a busy event loop); two, at least one interval apart,
 * are not.
 */
export const FAILED_CHECKS_DOWN = 2;

/**
 * The least time a check may take: SGLang's `/health` runs a one-token generation when the
 * engine has produced nothing for a while and answers 503 only after its own
 * `SGLANG_HEALTH_CHECK_TIMEOUT` (20 s by default), so a busy engine deep in a long prefill is not
 * cut short here: its own verdict is the one that counts. An engine that is gone is refused at
 * once, whatever this is.
 */
const MIN_CHECK_TIMEOUT_MS = 25_000;

/**
 * Watches an engine's health endpoint (vLLM's and SGLang's `GET /health`: 200 while the engine
 * serves; vLLM 503 once its engine core has died, SGLang 503 while it starts or when its
 * test generation fails) so that the worker can stop attracting calls while its engine is down
 * or restarting, and attract them again when it is back.
 *
 * The engine is `down` after {@link FAILED_CHECKS_DOWN} failed checks in a row — no answer
 * (refused, reset, timed out after the larger of twice the interval and 25 s) or a 5xx — or after
 * one while no check has passed yet (a worker started before its engine is ready), and up again
 * at the first 2xx. An engine without the endpoint (404, 405: Ollama, a proxy) is not
 * asked again and counts as up. Checks never overlap: the next starts an interval after the
 * last ended. `onChange` hears each change (for the log).
 */
export class EngineHealth {
  readonly #url: string;
  readonly #intervalMs: number;
  readonly #onChange: (down: boolean, reason: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;
  /** Whether a check has passed yet: before that one failure is enough (the engine was never seen up). */
  #seenUp = false;
  #down = false;
  #stopped = false;
  /** Aborts the check in flight at stop(): it must not hold the process open for its timeout. */
  readonly #stop = new AbortController();

  constructor(url: string, intervalMs: number, onChange: (down: boolean, reason: string) => void) {
    this.#url = url;
    this.#intervalMs = intervalMs;
    this.#onChange = onChange;
  }

  /** Whether the engine counts as down now (false before the first checks). */
  get down(): boolean {
    return this.#down;
  }

  /** Checks now (resolves when done, never rejects), then every interval until stop(). */
  async start(): Promise<void> {
    const more = await this.#check();
    if (!more) return;
    const tick = (): void => {
      this.#timer = setTimeout(
        () =>
          void this.#check().then((again) => {
            if (again && !this.#stopped) tick();
          }),
        this.#intervalMs,
      );
      this.#timer.unref();
    };
    if (!this.#stopped) tick();
  }

  stop(): void {
    this.#stopped = true;
    this.#stop.abort();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One check; false when the engine has no health endpoint and is not to be asked again. */
  async #check(): Promise<boolean> {
    let failure: string;
    // Linked, not AbortSignal.any: #stop lives as long as the worker, and AbortSignal.any would
    // leave an entry in it for every check (see linkSignals).
    const signal = linkSignals(AbortSignal.timeout(Math.max(2 * this.#intervalMs, MIN_CHECK_TIMEOUT_MS)), this.#stop.signal);
    try {
      const response = await fetch(this.#url, { signal: signal.signal });
      // The body says nothing the status does not; it is let go unread.
      await response.body?.cancel().catch(() => {});
      if (response.status === 404 || response.status === 405) {
        this.#failures = 0;
        this.#set(false, `${this.#url} answered ${response.status}: the engine has no health endpoint`);
        return false;
      }
      if (response.ok) {
        this.#failures = 0;
        this.#seenUp = true;
        this.#set(false, `${this.#url} answered ${response.status}`);
        return true;
      }
      if (response.status < 500) {
        // A 4xx other than these (a health check behind authentication) says nothing about the engine.
        return true;
      }
      failure = `${this.#url} answered ${response.status}`;
    } catch (error) {
      failure = `${this.#url} did not answer: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`;
    } finally {
      signal.release();
    }
    if (++this.#failures >= FAILED_CHECKS_DOWN || !this.#seenUp) this.#set(true, failure);
    return true;
  }

  #set(down: boolean, reason: string): void {
    if (down === this.#down || this.#stopped) return;
    this.#down = down;
    this.#onChange(down, reason);
  }
}
