import type { Invocation } from '../call/invocation.js';
import type { CallOutcome } from './loadbalance.js';

/** Predictions kept for calls in flight, at most; the oldest go first (their outcome then teaches nothing). */
const MAX_PENDING = 4096;
/** Weight of one observation in the running averages: about the last 20 calls to a worker count. */
const ALPHA = 0.05;
/**
 * One call's surprise (its observed over predicted TTFT, against the correction already learned)
 * counts as at most this factor either way, so an outlier cannot swing the correction. The cap is
 * on the surprise, not on the ratio itself: a worker 20x slower than its record says is learned
 * as 20x, a few dozen calls later, instead of stopping at the cap.
 */
const MAX_SURPRISE = Math.log(4);
/**
 * A worker's correction drifts back toward the fleet's typical one with this time constant
 * while nothing new is learned there: a worker the balancer stopped choosing (learned slow, or
 * failing) is tried again some time after it may have recovered, instead of never.
 */
const FORGET_MS = 30_000;
/** Output tokens assumed per call before any call was seen anywhere (then learned). */
export const PRIOR_OUTPUT_TOKENS = 128;

interface Learned {
  /** Running mean of log(observed TTFT / predicted TTFT), as of `learnedAt`. */
  logCorrection: number;
  /** When the correction was last learned (the balancer's clock). */
  learnedAt: number;
  /** Running mean of the time a call decodes there (end minus first answer), ms. */
  serviceMs: number | undefined;
}

/**
 * What the `slo` balancer learns about each worker from the calls it routed: how far its
 * predictions were off (a multiplicative correction, averaged in log space so over- and
 * under-estimates weigh alike) and how long a call decodes there (which sets how fast slots
 * free). Memory is bounded: predictions in flight by {@link MAX_PENDING}, workers by those the
 * caller forgets with {@link retainOnly}.
 */
export class WorkerLearning {
  readonly #workers = new Map<string, Learned>();
  readonly #pending = new Map<Invocation, { address: string; predictedMs: number }>();
  #fleetServiceMs: number | undefined;
  /** Running mean of the corrections learned from successful calls, across the fleet (log). */
  #fleetLogCorrection = 0;

  /** The factor to apply to `address`'s predicted TTFT at `now` (1 until calls were observed). */
  correction(address: string, now: number): number {
    const learned = this.#workers.get(address);
    return learned === undefined ? 1 : Math.exp(this.#logCorrection(learned, now));
  }

  /** `learned`'s correction at `now`: drifting toward the fleet's since it was last learned. */
  #logCorrection(learned: Learned, now: number): number {
    const idle = now - learned.learnedAt;
    if (!(idle > 0)) return learned.logCorrection;
    const fleet = this.#fleetLogCorrection;
    return fleet + (learned.logCorrection - fleet) * Math.exp(-idle / FORGET_MS);
  }

  /** How long a call decodes at `address`: learned there, else across the fleet, else undefined. */
  serviceMs(address: string): number | undefined {
    return this.#workers.get(address)?.serviceMs ?? this.#fleetServiceMs;
  }

  /** Remembers the (uncorrected) TTFT predicted for `invocation` on `address`. */
  expect(invocation: Invocation, address: string, predictedMs: number): void {
    this.#pending.delete(invocation);
    this.#pending.set(invocation, { address, predictedMs });
    if (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
  }

  /** Learns from a call's outcome at `now`; outcomes of calls it made no prediction for are ignored. */
  observe(outcome: CallOutcome, now: number): void {
    const pending = this.#pending.get(outcome.invocation);
    if (pending === undefined || pending.address !== outcome.address) return;
    this.#pending.delete(outcome.invocation);
    if (!(outcome.firstAnswerMs >= 0) || !(outcome.totalMs >= outcome.firstAnswerMs)) return;
    let learned = this.#workers.get(outcome.address);
    if (learned === undefined) {
      learned = { logCorrection: 0, learnedAt: now, serviceMs: undefined };
      this.#workers.set(outcome.address, learned);
    }
    learned.logCorrection = this.#logCorrection(learned, now);
    learned.learnedAt = now;
    // A failed answer counts as the largest surprise a call may make: a worker that fails fast
    // must not look fast. Were failures not learned from, a worker answering every call with an
    // error in 1 ms kept the correction it started with while its healthy peers learned their
    // real (longer) times, and drew three quarters of the calls.
    const surprise = outcome.failed ? MAX_SURPRISE : Math.log(Math.max(1, outcome.firstAnswerMs) / Math.max(1, pending.predictedMs)) - learned.logCorrection;
    // A prediction that was no number (or infinite) teaches nothing; learning from it would make the correction NaN for good.
    if (Number.isFinite(surprise)) learned.logCorrection += ALPHA * Math.min(MAX_SURPRISE, Math.max(-MAX_SURPRISE, surprise));
    if (outcome.failed) return;
    this.#fleetLogCorrection += ALPHA * (learned.logCorrection - this.#fleetLogCorrection);
    // How long the call held its place there: a stream's decode after its first token; a unary
    // call's answer is its end, so the whole call (learned as 0, the queue term priced nothing
    // ahead of a unary call and slo sent a unary service's calls to one worker while others idled).
    const decode = outcome.invocation.stream ? outcome.totalMs - outcome.firstAnswerMs : outcome.totalMs;
    learned.serviceMs = learned.serviceMs === undefined ? decode : learned.serviceMs + ALPHA * (decode - learned.serviceMs);
    this.#fleetServiceMs = this.#fleetServiceMs === undefined ? decode : this.#fleetServiceMs + ALPHA * (decode - this.#fleetServiceMs);
  }

  /** Forgets workers not in `live`. */
  retainOnly(live: ReadonlySet<string>): void {
    for (const address of this.#workers.keys()) if (!live.has(address)) this.#workers.delete(address);
  }
}
