import { checkInt, checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Invocation } from '../call/invocation.js';
import { ENVIRONMENT_KEYS, environmentOption } from './environment.js';
import { predict, profileOf, stepMs } from './latency-model.js';
import { SCORING_KEYS, ownShareOfLoad, scoringOption } from './load-score.js';
import type { CallOutcome, LoadBalancer, ProviderView, RouteDecision } from './loadbalance.js';
import { PREFIX_KEYS, PrefixTracker } from './prefix-tracker.js';
import { PRIOR_OUTPUT_TOKENS, WorkerLearning } from './worker-learning.js';
import { agreedChoice, type CostedCandidate } from './rendezvous.js';
import { hasRoom, skipsFull } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'slo';

/**
 * Latency-predicting routing (in the manner of llm-d's predicted-latency scorer): for every
 * candidate it predicts the call's time to first token — the time to drain what is ahead of it
 * there plus its uncached prompt tokens at the worker's prefill rate (latency-model.ts) — from
 * the worker's advertised capacity (slots, prefill and decode speed, KV size), its freshest load
 * with this consumer's in-flight work counted at the moment of the pick, and the prefix the
 * worker probably holds (prefix-tracker.ts). It takes the lowest cost:
 *
 *     cost = predicted TTFT
 *          + sequences decoding there x its own prefill time    (the stall it puts on them)
 *          + ttftSloMs x relative excess of the predicted inter-token gap over itlSloMs
 *
 * The second term is the latency the call costs others: a prefill stops every running
 * sequence's next token for as long, so a cache miss on a busy worker is expensive even when
 * its own TTFT would look fine; it is what keeps hit rates near an oracle's under load. The
 * third makes missing the gap SLO cost as much as missing the TTFT SLO by the same share.
 *
 * There is no spill threshold: a cached prefix wins exactly while the queue in front of it
 * drains faster than another worker prefills the whole prompt, and a larger worker draws more
 * traffic because its queue drains faster (capacity-weighted by construction).
 *
 * Consumers that share a fleet but no state settle near-equal costs alike: among the candidates
 * within one prefill of the prompt (scaled by the share of the fleet's load that other consumers
 * send) of the cheapest and no busier than average, the one the prompt's first blocks prefer by
 * weighted rendezvous hashing wins (rendezvous.ts), so they send a new prefix to the same worker
 * before any cache summary could tell them where it went.
 *
 * It learns online (worker-learning.ts): each worker's ratio of observed to predicted TTFT
 * corrects its later predictions, and how long a call occupies a slot there sets the drain
 * rate. The client reports outcomes through `observe`.
 *
 * Options: `{ ttftSloMs (2000), itlSloMs (50), blockChars, maxBlocks, defaultCapacityBlocks,
 * staleAfterMs, prefillTokensPerSecond, clock, random }`.
 */
export const createSloBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('slo loadbalance options', options, ['ttftSloMs', 'itlSloMs', ...PREFIX_KEYS, ...SCORING_KEYS, ...ENVIRONMENT_KEYS]);
  const ttftSloMs = checkInt('slo loadbalance ttftSloMs', options['ttftSloMs'], 1, 3_600_000, 2000);
  const itlSloMs = checkInt('slo loadbalance itlSloMs', options['itlSloMs'], 1, 60_000, 50);
  const env = environmentOption(TYPE_NAME, options);
  const scoring = scoringOption(TYPE_NAME, options);
  const tracker = PrefixTracker.fromOptions(TYPE_NAME, options);
  const learning = new WorkerLearning();

  const decide = (all: readonly ProviderView[], invocation: Invocation, now: number): RouteDecision => {
    const hashes = tracker.hashesOf(invocation);
    // The candidates as given (not withRoom's copy), so the index knows them from the last call.
    const matches = hashes.length === 0 ? undefined : tracker.matchEach(all, hashes);
    const skipFull = skipsFull(all);
    const promptTokens = Math.ceil((invocation.routingKey?.length ?? 0) / 4);
    const candidates: Candidate[] = [];
    for (let i = 0; i < all.length; i++) {
      const provider = all[i]!;
      if (skipFull && !hasRoom(provider)) continue;
      const matched = matches === undefined ? 0 : matches[i]!;
      const cachedTokens = Math.min(promptTokens, matched * tracker.blockTokens);
      const profile = profileOf(provider, scoring.prefillTokensPerSecond);
      const serviceMs = learning.serviceMs(provider.address) ?? stepMs(profile, profile.slots) * PRIOR_OUTPUT_TOKENS;
      const raw = predict(provider, { promptTokens, cachedTokens, serviceMs }, now, scoring);
      const ttft = raw.ttftMs * learning.correction(provider.address, now);
      // Its prefill stalls every sequence decoding there for as long: latency it costs others.
      const stall = Math.min(raw.ahead, profile.slots) * raw.ownPrefillMs;
      const predicted = ttft + stall + (raw.itlMs > itlSloMs ? (ttftSloMs * (raw.itlMs - itlSloMs)) / itlSloMs : 0);
      // A cost that is not a number (figures at the edge of the number range) ranks last: NaN
      // compares false both ways, and the candidate holding it would otherwise win every pick.
      const cost = Number.isNaN(predicted) ? Infinity : predicted;
      candidates.push({
        provider,
        address: provider.address,
        weight: profile.slots,
        cost,
        ttft,
        rawTtft: raw.ttftMs,
        cachedTokens,
        ownPrefillMs: raw.ownPrefillMs,
        busy: raw.ahead / profile.slots,
      });
    }
    // Near-equal costs are settled the same way by every consumer (rendezvous on the prompt's
    // opening), so a new prefix is prefilled once, not once per consumer. "Near" is what a
    // disagreement costs — the prompt prefilled again where another consumer sends it — times the
    // chance the next such call comes from another consumer, the share of the load that is not
    // this consumer's: alone in front of a fleet, only exact ties are settled by the hash.
    const chosen =
      hashes.length === 0
        ? cheapestAtRandom(candidates, env.random)
        : agreedChoice(candidates, agreementKey(hashes), (cheapest) => cheapest.ownPrefillMs * (1 - ownShareOfLoad(all)));
    const { provider, cost: bestCost, ttft: bestTtft, rawTtft: bestRaw, cachedTokens: bestCached } = chosen;
    learning.expect(invocation, provider.address, bestRaw);
    const branch = all.length === 1 ? 'only' : hashes.length === 0 ? 'fallback' : bestCached > 0 ? 'hit' : 'cold';
    return {
      provider,
      policy: TYPE_NAME,
      branch,
      detail: { predictedTtftMs: Math.round(bestTtft), cost: Math.round(bestCost), cachedTokens: bestCached },
      uncachedTokens: promptTokens - bestCached,
    };
  };

  return {
    name: TYPE_NAME,
    select(providers: readonly ProviderView[], invocation: Invocation) {
      const now = env.now();
      const live = tracker.markSeen(providers, now);
      if (live !== undefined) learning.retainOnly(live);
      const decision = decide(providers, invocation, now);
      tracker.record(decision.provider, invocation);
      return decision;
    },
    observe(outcome: CallOutcome) {
      learning.observe(outcome, env.now());
    },
  };
};

/** A worker's predicted cost for one call, and the parts of it the decision reports. */
interface Candidate extends CostedCandidate<ProviderView> {
  readonly ttft: number;
  /** TTFT before the worker's learned correction (what the correction is learned against). */
  readonly rawTtft: number;
  readonly cachedTokens: number;
  readonly ownPrefillMs: number;
}

/**
 * Blocks of the prompt (64 characters each) that name its "home" for rendezvous hashing: the
 * chain hash of the first 8 (128 tokens), so a stock opening line shared by unrelated prompts
 * does not give them all one home, while any system prompt or conversation start worth caching
 * is longer than that.
 */
const AGREEMENT_BLOCKS = 8;

/** The rendezvous key of a prompt with block hashes `hashes` (not empty). */
function agreementKey(hashes: readonly number[]): number {
  return hashes[Math.min(hashes.length, AGREEMENT_BLOCKS) - 1]!;
}

/** The cheapest candidate, ties drawn with `random`: for calls without a prompt, where there is nothing to agree on. */
function cheapestAtRandom(candidates: readonly Candidate[], random: () => number): Candidate {
  let lowest = Infinity;
  let ties: Candidate[] = [];
  for (const candidate of candidates) {
    if (candidate.cost < lowest) {
      lowest = candidate.cost;
      ties = [candidate];
    } else if (candidate.cost === lowest) ties.push(candidate);
  }
  // Every cost NaN or infinite (a worker's published speeds or sizes at the edge of the number
  // range) still picks one: select() never throws.
  if (ties.length === 0) ties = candidates as Candidate[];
  return ties[Math.floor(random() * ties.length)]!;
}
