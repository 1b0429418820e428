/**
 * Flow-control credit of one stream on the provider: bytes it may still send before the
 * consumer grants more with WINDOW_UPDATE. Credit may go negative by one chunk (a chunk larger
 * than the remaining credit is still sent whole), which keeps any chunk size possible.
 */
export class StreamCredit {
  readonly #window: number;
  #available: number;
  #wake: (() => void) | undefined;

  constructor(initial: number) {
    this.#window = initial;
    this.#available = initial;
  }

  get available(): number {
    return this.#available;
  }

  take(bytes: number): void {
    this.#available -= bytes;
  }

  /**
   * Adds credit from a WINDOW_UPDATE. Credit never exceeds the stream's window: a consumer that
   * grants more than it has received (a WINDOW_UPDATE of 0xffffffff) gains nothing by it. Returns
   * whether the stream gained credit (an honest consumer grants only bytes it received, so its
   * updates always do).
   */
  grant(bytes: number): boolean {
    const before = this.#available;
    this.#available = Math.min(this.#window, before + bytes);
    this.#release();
    return this.#available > before;
  }

  /** Resolves when credit is granted or `release()` is called (on abort). */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Resolves when `other` settles, credit is granted, or `release()` is called. */
  waitFor(other: Promise<void>): Promise<void> {
    return Promise.race([other, this.wait()]);
  }

  #release(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Wakes a waiting pump without credit, so it can see that its call was aborted. */
  release(): void {
    this.#release();
  }
}
