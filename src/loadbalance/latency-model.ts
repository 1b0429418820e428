import type { ProviderView } from './loadbalance.js';
import { estimateLoad, prefillRate, type LoadScoreOptions } from './load-score.js';
import { slots } from './weights.js';

/**
 * What a worker advertises about its speed, read from its record's metadata, with defaults
 * for what it leaves out:
 * - `slots`: sequences it decodes at once (see `slots()`);
 * - `prefillTokensPerSecond`: prompt processing speed;
 * - `prefillOverheadMs`: fixed cost of a prefill step (scheduling, launches, sampling), 0 when unknown;
 * - `decodeBaseMs`, `decodePerSequenceMs`: one decode step lasts base + perSequence x batch;
 * - `kvCapacityTokens`: KV-cache size (the prefix index bounds its guess of the worker's cache by it).
 */
export interface WorkerProfile {
  readonly slots: number;
  readonly prefillTokensPerSecond: number;
  readonly prefillOverheadMs: number;
  readonly decodeBaseMs: number;
  readonly decodePerSequenceMs: number;
}

/** Priors for workers that advertise nothing; the online correction makes up the rest. */
export const DEFAULT_PROFILE = { decodeBaseMs: 8, decodePerSequenceMs: 0.5 } as const;

/** A worker's profile from its record; `prefillFallback` when it advertises no prefill rate. */
export function profileOf(view: ProviderView, prefillFallback: number): WorkerProfile {
  const metadata = view.instance.metadata;
  const number = (key: string, fallback: number): number => {
    const value = metadata[key];
    return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return {
    slots: slots(view.instance),
    prefillTokensPerSecond: prefillRate(view, prefillFallback),
    prefillOverheadMs: number('prefillOverheadMs', 0),
    decodeBaseMs: number('decodeBaseMs', DEFAULT_PROFILE.decodeBaseMs),
    decodePerSequenceMs: number('decodePerSequenceMs', DEFAULT_PROFILE.decodePerSequenceMs),
  };
}

/** The length of one decode step with `batch` sequences running, ms. */
export function stepMs(profile: WorkerProfile, batch: number): number {
  return profile.decodeBaseMs + profile.decodePerSequenceMs * Math.min(profile.slots, Math.max(1, batch));
}

/** A prediction for one call on one worker, before the per-worker correction. */
export interface Prediction {
  /** Time to the first token, ms. */
  readonly ttftMs: number;
  /** Mean gap between tokens while it decodes, ms. */
  readonly itlMs: number;
  /** Requests ahead of it (running and queued). */
  readonly ahead: number;
  /** Its own prefill, ms: the stall it puts on every sequence decoding there. */
  readonly ownPrefillMs: number;
}

/** What the predictor needs to know about the call and the worker's recent past. */
export interface PredictionInput {
  readonly promptTokens: number;
  /** Prompt tokens the worker (probably) holds in its prefix cache. */
  readonly cachedTokens: number;
  /** How long one request occupies a slot there once it decodes (learned), ms. */
  readonly serviceMs: number;
}

/**
 * Predicts a call's latency on one worker as a queue: the freshest load (`estimateLoad`: the
 * snapshot aged, plus what this consumer sent since, counted at the moment of the pick) puts
 * `ahead` requests in front of it. While a slot is free it waits for nothing but the prefill
 * queued ahead; otherwise `ahead + 1 - slots` of them must finish first, and slots free at
 * `slots / serviceMs`. Then its own uncached tokens prefill:
 *
 *     ttft = max(0, ahead + 1 - slots) x serviceMs / slots
 *          + (uncached tokens queued + own uncached tokens) / prefill rate
 *          + prefill overhead + one decode step
 *
 * Its inter-token gap is a decode step at the batch it joins, stretched by the prefill work it
 * shares the worker with (a prefill stalls every running sequence's next token).
 */
export function predict(view: ProviderView, input: PredictionInput, now: number, scoring: LoadScoreOptions): Prediction {
  const profile = profileOf(view, scoring.prefillTokensPerSecond);
  const load = estimateLoad(view, now, scoring);
  const ahead = load.requests;
  const queued = Math.max(0, ahead + 1 - profile.slots);
  // Nothing to drain is no wait, also when a worker's advertised figures make serviceMs infinite.
  const drainMs = queued === 0 ? 0 : (queued * input.serviceMs) / profile.slots;
  const uncached = Math.max(0, input.promptTokens - input.cachedTokens);
  const ownPrefillMs = (uncached / profile.prefillTokensPerSecond) * 1000;
  const prefillMs = (load.uncachedTokens / profile.prefillTokensPerSecond) * 1000 + ownPrefillMs;
  const step = stepMs(profile, ahead + 1);
  const ttftMs = drainMs + prefillMs + profile.prefillOverheadMs + step;
  // Prefill of the work queued there and of the calls that will arrive while this one decodes,
  // spread over its decode; the queued prefill is what is known now.
  const itlMs = step + ((load.uncachedTokens / profile.prefillTokensPerSecond) * 1000 * step) / Math.max(step, input.serviceMs);
  return { ttftMs, itlMs, ahead, ownPrefillMs };
}
