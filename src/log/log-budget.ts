/**
 * How many lines of one kind a server writes: a burst, then a steady rate (a token bucket).
 * Lines past it are not written but counted, and the next line written says how many were
 * held back: a peer that can make every call fail (a handler that throws on its input, a
 * worker that refuses every request behind a gateway) must not make the process write a line
 * per call — 2,000 failing calls a second wrote 1.6 MB a second of stack traces.
 */
export class LogBudget {
  readonly #burst: number;
  readonly #perSecond: number;
  #tokens: number;
  #at = performance.now();
  #held = 0;

  /** `burst` lines at once, then `perSecond` lines a second. */
  constructor(burst: number, perSecond: number) {
    this.#burst = burst;
    this.#perSecond = perSecond;
    this.#tokens = burst;
  }

  /** The budget's rate, for the words of a line that says lines were held back. */
  get perSecond(): number {
    return this.#perSecond;
  }

  /**
   * Whether a line may be written now: undefined when it may not (it is counted), else how
   * many lines were held back since the last one written (0 for none).
   */
  take(): number | undefined {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#perSecond);
    this.#at = now;
    if (this.#tokens < 1) {
      this.#held++;
      return undefined;
    }
    this.#tokens--;
    const held = this.#held;
    this.#held = 0;
    return held;
  }
}
