import { fmix, hash32 } from './hash.js';

/*
 * Rendezvous (highest-random-weight) hashing, Thaler and Ravishankar: every (key, provider)
 * pair gets a pseudo-random score that depends on nothing else, and a key's preferred provider
 * is the one with the highest score. Any two consumers that see the same providers therefore
 * prefer the same one for the same key without exchanging a message, and removing a provider
 * only moves the keys that preferred it.
 */

/**
 * The rendezvous score of `key` (an integer, such as a prompt block's chain hash) at the provider
 * `address`, with `weight` its share of capacity (> 0): weight / -ln(u), where u in (0, 1) is a
 * hash of the pair. The provider with the highest score is the key's preferred one; over many
 * keys each provider is preferred in proportion to its weight (weighted rendezvous hashing,
 * Schindelhauer and Schomaker), so a 32-slot worker is the home of 8x the keys of a 4-slot one.
 * Pure: the same inputs give the same score in every process.
 */
export function rendezvousScore(key: number, address: string, weight: number): number {
  // Mixed twice, so providers' scores for one key, and one provider's for nearby keys, are independent.
  const h = fmix(Math.imul(hash32(address), 0x9e3779b1) ^ fmix((key | 0) ^ Math.floor(key / 0x100000000)));
  // (h + 0.5) / 2^32 is never 0 or 1, so the logarithm is finite and negative.
  const u = (h + 0.5) / 0x100000000;
  return weight / -Math.log(u);
}

/** One candidate of a pick: its provider and what the balancer predicts there. */
export interface CostedCandidate<P> {
  readonly provider: P;
  readonly address: string;
  /** Capacity share for the rendezvous weight (a worker's batch slots). */
  readonly weight: number;
  readonly cost: number;
  /** Requests ahead there per unit of capacity (per batch slot). */
  readonly busy: number;
}

/**
 * The candidate that consumers who never talk to each other agree on. The cheapest stands
 * unless another candidate is within `slack(cheapest)` of its cost and no busier, per unit of
 * capacity, than the candidates' average; among those and the cheapest, `key` picks by
 * rendezvous hashing. The average is the bound of bounded-load consistent hashing (Mirrokni,
 * Thorup, Zadimoghaddam) with no allowance above it: agreement moves work only onto a worker
 * that is at most averagely busy, so it does not build a hot spot. With slack 0 only exact ties
 * go to the hash. `candidates` must not be empty.
 */
export function agreedChoice<P, C extends CostedCandidate<P>>(candidates: readonly C[], key: number, slack: (cheapest: C) => number): C {
  let cheapest = candidates[0]!;
  let meanBusy = 0;
  for (const candidate of candidates) {
    if (candidate.cost < cheapest.cost) cheapest = candidate;
    meanBusy += candidate.busy / candidates.length;
  }
  const limit = cheapest.cost + Math.max(0, slack(cheapest));
  let chosen = cheapest;
  let chosenScore = rendezvousScore(key, cheapest.address, cheapest.weight);
  for (const candidate of candidates) {
    if (candidate === cheapest || candidate.cost > limit || (candidate.cost > cheapest.cost && candidate.busy > meanBusy)) continue;
    const score = rendezvousScore(key, candidate.address, candidate.weight);
    if (score > chosenScore) {
      chosen = candidate;
      chosenScore = score;
    }
  }
  return chosen;
}
