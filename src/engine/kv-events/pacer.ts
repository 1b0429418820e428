/**
 * How much of the event loop following KV events may take: work runs in slices of at most
 * {@link SLICE_MS} between turns of the loop, and at most {@link SHARE} of each second; past
 * that share the work waits for the next second. While it waits, messages stay in ZeroMQ's small
 * queue, which drops new ones once it is full (a gap in the sequence, counted): a publisher
 * faster than the worker loses messages instead of taking the worker's time from its calls.
 *
 * What a real engine sends stays far below: vLLM storing 1,250 blocks a second costs about 3 ms
 * of it a second.
 */
export class WorkPacer {
  /** The longest stretch of work between two turns of the event loop, ms. */
  static readonly SLICE_MS = 2;
  /** The part of each second the work may take. */
  static readonly SHARE = 0.25;
  static readonly WINDOW_MS = 1000;

  #sliceStart = 0;
  #windowStart = -Infinity;
  /** Work done in the current window, ms. */
  #spent = 0;

  /** Resolves when work may start: at once, or at the next window when this one's share is spent. */
  async ready(): Promise<void> {
    const now = performance.now();
    if (now - this.#windowStart >= WorkPacer.WINDOW_MS) {
      this.#windowStart = now;
      this.#spent = 0;
    } else if (this.#spent >= WorkPacer.SHARE * WorkPacer.WINDOW_MS) {
      await new Promise<void>((resolve) => setTimeout(resolve, this.#windowStart + WorkPacer.WINDOW_MS - now).unref());
      this.#windowStart = performance.now();
      this.#spent = 0;
    }
    this.#sliceStart = performance.now();
  }

  /** Whether the current slice is used up (then call {@link rest}). */
  due(): boolean {
    return performance.now() - this.#sliceStart >= WorkPacer.SLICE_MS;
  }

  /** Ends a slice: one turn of the event loop, or the wait for the next window; then a new slice. */
  async rest(): Promise<void> {
    this.stop();
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.ready();
  }

  /** Ends the work for now (counts its time). */
  stop(): void {
    this.#spent += performance.now() - this.#sliceStart;
  }
}
