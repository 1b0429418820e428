import type { ProviderStats } from '../loadbalance/loadbalance.js';
import type { LoadSnapshot } from '../registry/registry.js';
import { monotonicNow } from '../common/clock.js';
import { MethodKeys, MethodWait, type MethodKey } from './method-wait.js';

const SLICES = 10;
const SLICE_MS = 1000;

/** One provider's live numbers as this consumer sees them; see {@link ProviderStats}. */
export class LiveProviderStats implements ProviderStats {
  inFlight = 0;
  inFlightTokens = 0;
  prefillTokens = 0;
  startedSinceLoad = 0;
  tokensSinceLoad = 0;
  load: LoadSnapshot | undefined;
  /** Calls in flight that have had no first answer yet (no response, no stream chunk). */
  #awaiting = 0;
  /** When a call started waiting with none waiting before (the current run of waiting calls began). */
  #waitingSince = 0;
  /**
   * The provider's last answer to this consumer: a response, an error it sent, a stream's first
   * chunk or end. Load reports are no answer: a worker whose handlers hang still sends them.
   */
  #heardAt = 0;
  /** The waiting calls of each method, at their {@link MethodKey.index} (see `withoutStalled`). */
  readonly #waits: Array<MethodWait | undefined> = [];
  /** Failed answers, decayed to {@link #failingAt} (see {@link failing}). */
  #failing = 0;
  #failingAt = 0;
  /** How long a successful call here takes, ms (a running mean; 100 until one is seen). */
  #typicalMs = 100;
  /** Arrival of the freshest snapshot seen (registry or piggybacked); the "since" counters are relative to it. */
  #loadSeen: number | undefined;
  /** Latency sums and counts in 1 s slices over the last 10 s. */
  readonly #sums = new Float64Array(SLICES);
  readonly #counts = new Uint32Array(SLICES);
  #slice = 0;
  #sliceStart = 0;

  /** `methods`: the client's method keys, to find a method's own latency by its name. */
  constructor(private readonly methods?: MethodKeys) {}

  /**
   * Resets the "since" counters when a registry snapshot newer than any seen has arrived (an
   * older one changes nothing: the counters stay relative to the freshest signal).
   */
  observeLoad(load: LoadSnapshot | undefined): void {
    const seen = load?.receivedAt ?? load?.timestamp;
    if (seen !== undefined && (this.#loadSeen === undefined || seen > this.#loadSeen)) {
      this.#loadSeen = seen;
      this.startedSinceLoad = 0;
      this.tokensSinceLoad = 0;
    }
  }

  /** Keeps a snapshot piggybacked on an answer (with `receivedAt` set) as the freshest signal. */
  observeAnswerLoad(load: LoadSnapshot): void {
    this.load = load;
    this.observeLoad(load);
  }

  /**
   * A call of `tokens` prompt tokens was sent; it counts as prefilling until {@link answered}.
   * `method`: which method it calls, for the stall rule (none: counted for the provider only).
   */
  start(tokens: number, now: number = monotonicNow(), method?: MethodKey): void {
    if (this.#awaiting <= 0) this.#waitingSince = now;
    this.#awaiting++;
    if (method !== undefined) {
      const wait = this.#track(method);
      if (wait.awaiting <= 0) wait.since = now;
      wait.awaiting++;
    }
    this.inFlight++;
    this.inFlightTokens += tokens;
    this.prefillTokens += tokens;
    this.startedSinceLoad++;
    this.tokensSinceLoad += tokens;
  }

  /** A call sent with `tokens` had its first answer (a stream's first chunk): its prompt is computed. */
  answered(tokens: number, now: number = monotonicNow(), method?: MethodKey): void {
    this.prefillTokens -= tokens;
    this.#awaiting--;
    this.#heardAt = now;
    const wait = method === undefined ? undefined : this.#waits[method.index];
    if (wait !== undefined) {
      wait.awaiting--;
      wait.since = now;
    }
  }

  /**
   * A call of `method` sent at `started` ended at `now` without any answer, ended by this
   * consumer (its deadline, a cancel): if nothing was heard from the provider since it began,
   * how long it waited stays on record until the provider's next answer (see `withoutStalled`).
   */
  gaveUp(started: number, now: number, method: MethodKey): void {
    const wait = this.#waits[method.index];
    if (wait === undefined || this.#heardAt >= started) return;
    if (wait.unansweredHeardAt !== this.#heardAt) {
      wait.unansweredHeardAt = this.#heardAt;
      wait.unansweredMs = 0;
    }
    if (now - started > wait.unansweredMs) wait.unansweredMs = now - started;
  }

  /** The provider answered a call (of `method`, if given), or failed it itself: it is not hung. */
  heard(now: number = monotonicNow(), method?: MethodKey): void {
    this.#heardAt = now;
    const wait = method === undefined ? undefined : this.#waits[method.index];
    if (wait !== undefined) wait.since = now;
  }

  /**
   * Failed answers lately, each counted as a call held for {@link #typicalMs} and fading
   * exponentially after (see ProviderStats.failing): by Little's law, failures at rate r count
   * as r x a successful call's time, the calls a healthy provider would hold for them.
   */
  get failing(): number {
    return this.#failing === 0 ? 0 : this.#decayed(monotonicNow());
  }

  /** The provider answered a call with an error of its own. */
  failedAnswer(now: number = monotonicNow()): void {
    this.#failing = this.#decayed(now) + 1;
    this.#failingAt = now;
  }

  #decayed(now: number): number {
    const left = this.#failing * Math.exp(-Math.max(0, now - this.#failingAt) / this.#typicalMs);
    if (left < 0.01) this.#failing = 0;
    return left < 0.01 ? 0 : left;
  }

  /**
   * How long this consumer has had calls waiting for their first answer at the provider and
   * heard nothing from it (0 with none waiting; a stream that is delivering chunks is not
   * waiting): the sign of a worker whose handlers hang while its connection, heartbeats and
   * load reports look well.
   */
  quietMs(now: number = monotonicNow()): number {
    return this.#awaiting > 0 ? Math.max(0, now - Math.max(this.#waitingSince, this.#heardAt)) : 0;
  }

  /**
   * How long this consumer has had calls waiting at the provider without a pause, answers or
   * not (0 with none waiting): no call there, of any method, has waited longer.
   */
  waitingMs(now: number): number {
    return this.#awaiting > 0 ? Math.max(0, now - this.#waitingSince) : 0;
  }

  /** The provider's last answer to this consumer (see {@link quietMs}); 0 before any. */
  get heardAt(): number {
    return this.#heardAt;
  }

  /** The calls of `method` this consumer has made here, undefined before the first. */
  methodWait(method: MethodKey): MethodWait | undefined {
    return this.#waits[method.index];
  }

  /** Every method this consumer has called here, at its key's index (holes where it has not). */
  get methodWaits(): ReadonlyArray<MethodWait | undefined> {
    return this.#waits;
  }

  #track(method: MethodKey): MethodWait {
    const known = this.#waits[method.index];
    if (known !== undefined) return known;
    // Filled up to the index (keys are numbered from 0 by one client): a packed array, no holes.
    while (this.#waits.length <= method.index) this.#waits.push(undefined);
    const wait = new MethodWait(method, SLICES);
    this.#waits[method.index] = wait;
    return wait;
  }

  /**
   * How long a successful call here takes, ms, all methods together: a running mean that, unlike
   * the average latency, never empties. It sets how fast a failed answer's weight fades; the
   * stall rule judges each method by its own ({@link MethodWait.typicalMs}).
   */
  get typicalMs(): number {
    return this.#typicalMs;
  }

  /**
   * A call ended; `answered`: whether {@link answered} was already called for it. Only a call
   * that `succeeded` counts in the average latency: a provider that fails at once would
   * otherwise look the fastest to a latency-minded balancer and draw the traffic. `method`: the
   * key it was started with; `firstAnswerMs`: how long it waited for its first answer (a
   * stream's first chunk; by default its whole time, as for a unary call).
   */
  end(tokens: number, latencyMs: number, now: number, answered: boolean, succeeded = true, method?: MethodKey, firstAnswerMs = latencyMs): void {
    this.inFlight--;
    this.inFlightTokens -= tokens;
    const wait = method === undefined ? undefined : this.#waits[method.index];
    if (!answered) {
      this.prefillTokens -= tokens;
      this.#awaiting--;
      if (wait !== undefined) wait.awaiting--;
    }
    if (!succeeded) return;
    this.#typicalMs += 0.1 * (Math.max(1, latencyMs) - this.#typicalMs);
    wait?.succeeded(firstAnswerMs);
    this.#rotate(now);
    this.#sums[this.#slice]! += latencyMs;
    this.#counts[this.#slice]!++;
    if (wait !== undefined) {
      wait.latencySums[this.#slice]! += latencyMs;
      wait.latencyCounts[this.#slice]!++;
    }
  }

  /**
   * Average latency of this consumer's recent successful calls of `method` of `service` here
   * (about the last 10 s), ms; undefined before any: a provider that ran a 10 s generation is
   * not slow at 5 ms embeddings. Stats made outside a client's table keep no methods apart:
   * theirs is the provider's average.
   */
  methodLatencyMs(service: string, method: string, now: number = monotonicNow()): number | undefined {
    if (this.methods === undefined) return this.averageLatencyMs(now);
    const key = this.methods.find(service, method);
    const wait = key === undefined ? undefined : this.#waits[key.index];
    if (wait === undefined) return undefined;
    this.#rotate(now);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < SLICES; i++) {
      sum += wait.latencySums[i]!;
      count += wait.latencyCounts[i]!;
    }
    return count === 0 ? undefined : sum / count;
  }

  averageLatencyMs(now: number = monotonicNow()): number | undefined {
    this.#rotate(now);
    let sum = 0;
    let count = 0;
    for (let i = 0; i < SLICES; i++) {
      sum += this.#sums[i]!;
      count += this.#counts[i]!;
    }
    return count === 0 ? undefined : sum / count;
  }

  #rotate(now: number): void {
    if (this.#sliceStart === 0) this.#sliceStart = now;
    let steps = Math.floor((now - this.#sliceStart) / SLICE_MS);
    if (steps <= 0) return;
    this.#sliceStart += steps * SLICE_MS;
    if (steps > SLICES) steps = SLICES;
    for (let i = 0; i < steps; i++) {
      this.#slice = (this.#slice + 1) % SLICES;
      this.#sums[this.#slice] = 0;
      this.#counts[this.#slice] = 0;
      for (const wait of this.#waits) {
        if (wait === undefined) continue;
        wait.latencySums[this.#slice] = 0;
        wait.latencyCounts[this.#slice] = 0;
      }
    }
  }
}

/** The live stats of every provider address one client talks to. */
export class ProviderStatsTable {
  readonly #byAddress = new Map<string, LiveProviderStats>();
  readonly #methods = new MethodKeys();

  /** The key under which every provider's stats count the calls of `method` of `service` (see {@link MethodKeys}). */
  methodKey(service: string, method: string): MethodKey {
    return this.#methods.of(service, method);
  }

  get(address: string): LiveProviderStats {
    let stats = this.#byAddress.get(address);
    if (stats === undefined) {
      stats = new LiveProviderStats(this.#methods);
      this.#byAddress.set(address, stats);
    }
    return stats;
  }

  /** Forgets addresses that left every directory (called with the live set). */
  retainOnly(live: ReadonlySet<string>): void {
    for (const address of this.#byAddress.keys()) {
      if (!live.has(address) && this.#byAddress.get(address)!.inFlight === 0) this.#byAddress.delete(address);
    }
  }
}
