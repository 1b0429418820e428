/**
 * Connects under way at once, for every connection of one consumer. A registry can list
 * thousands of addresses that never answer (a black hole holds each connect for the whole
 * connect timeout); without a bound, every call in flight would hold a socket in SYN_SENT. Past the limit a connect waits for a slot, first come first served; the waiters are
 * connections, at most the consumer's `maxConnections`.
 */
export class ConnectGate {
  readonly limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Whether every slot is taken: a new connect would wait. */
  get full(): boolean {
    return this.#running >= this.limit;
  }

  /** Connects under way now, and waiting for a slot. */
  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `connect` in a slot (waiting for one first when all are taken); the slot is given back when it settles. */
  run(connect: () => Promise<void>): Promise<void> {
    if (this.#running < this.limit) return this.#start(connect);
    return new Promise<void>((resolve) => this.#waiting.push(resolve)).then(() => this.#start(connect));
  }

  #start(connect: () => Promise<void>): Promise<void> {
    this.#running++;
    let attempt: Promise<void>;
    try {
      attempt = connect();
    } catch (error) {
      attempt = Promise.reject(error);
    }
    const release = (): void => {
      this.#running--;
      this.#waiting.shift()?.();
    };
    attempt.then(release, release);
    return attempt;
  }
}
