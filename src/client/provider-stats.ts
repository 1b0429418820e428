import type { ProviderStats } from '../loadbalance/loadbalance.js';
import type { LoadSnapshot } from '../registry/registry.js';
import { monotonicNow } from '../common/clock.js';

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
  /**
   * Since when this consumer has been waiting on the provider without hearing from it: the
   * later of the moment a call of its started waiting with none waiting before and the
   * provider's last answer (a response, an error it sent, a stream's first chunk or end). Load
   * reports are no answer: a worker whose handlers hang still sends them.
   */
  #quietSince = 0;
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

  /** A call of `tokens` prompt tokens was sent; it counts as prefilling until {@link answered}. */
  start(tokens: number, now: number = monotonicNow()): void {
    if (this.#awaiting <= 0) this.#quietSince = now;
    this.#awaiting++;
    this.inFlight++;
    this.inFlightTokens += tokens;
    this.prefillTokens += tokens;
    this.startedSinceLoad++;
    this.tokensSinceLoad += tokens;
  }

  /** A call sent with `tokens` had its first answer (a stream's first chunk): its prompt is computed. */
  answered(tokens: number, now: number = monotonicNow()): void {
    this.prefillTokens -= tokens;
    this.#awaiting--;
    this.#quietSince = now;
  }

  /** The provider answered a call (or failed it itself): it is not hung. */
  heard(now: number = monotonicNow()): void {
    this.#quietSince = now;
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
    return this.#awaiting > 0 ? Math.max(0, now - this.#quietSince) : 0;
  }

  /** How long a successful call here takes, ms: a running mean that, unlike the average latency, never empties. */
  get typicalMs(): number {
    return this.#typicalMs;
  }

  /**
   * A call ended; `answered`: whether {@link answered} was already called for it. Only a call
   * that `succeeded` counts in the average latency: a provider that fails at once would
   * otherwise look the fastest to a latency-minded balancer and draw the traffic.
   */
  end(tokens: number, latencyMs: number, now: number, answered: boolean, succeeded = true): void {
    this.inFlight--;
    this.inFlightTokens -= tokens;
    if (!answered) {
      this.prefillTokens -= tokens;
      this.#awaiting--;
    }
    if (!succeeded) return;
    this.#typicalMs += 0.1 * (Math.max(1, latencyMs) - this.#typicalMs);
    this.#rotate(now);
    this.#sums[this.#slice]! += latencyMs;
    this.#counts[this.#slice]!++;
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
    }
  }
}

/** The live stats of every provider address one client talks to. */
export class ProviderStatsTable {
  readonly #byAddress = new Map<string, LiveProviderStats>();

  get(address: string): LiveProviderStats {
    let stats = this.#byAddress.get(address);
    if (stats === undefined) {
      stats = new LiveProviderStats();
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
