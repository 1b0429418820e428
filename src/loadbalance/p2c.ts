import { checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { ENVIRONMENT_KEYS, environmentOption } from './environment.js';
import { loadScore, SCORING_KEYS, scoringOption } from './load-score.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { withRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'p2c';

/**
 * Power of two choices: sample two distinct providers at random and take the one with the
 * lower load score (load-score.ts: the provider's load snapshot plus what this consumer sent
 * since, or only this consumer's in-flight work when the snapshot is stale). Two random
 * choices avoid both herding onto one "least loaded" worker and blind randomness. Providers at
 * their concurrency cap are skipped while others have room. Options:
 * `{ staleAfterMs, prefillTokensPerSecond, clock, random }`.
 */
export const createP2cBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('p2c loadbalance options', options, [...SCORING_KEYS, ...ENVIRONMENT_KEYS]);
  const env = environmentOption(TYPE_NAME, options);
  const scoring = scoringOption(TYPE_NAME, options);
  return {
    name: TYPE_NAME,
    select(all: readonly ProviderView[]) {
      if (all.length === 1) return { provider: all[0]!, policy: TYPE_NAME, branch: 'only' };
      const providers = withRoom(all);
      if (providers.length === 1) return { provider: providers[0]!, policy: TYPE_NAME, branch: 'pick' };
      const first = Math.floor(env.random() * providers.length);
      let second = Math.floor(env.random() * (providers.length - 1));
      if (second >= first) second++;
      const now = env.now();
      const a = providers[first]!;
      const b = providers[second]!;
      const scoreA = loadScore(a, now, scoring);
      const scoreB = loadScore(b, now, scoring);
      const [provider, score] = scoreA <= scoreB ? [a, scoreA] : [b, scoreB];
      return { provider, policy: TYPE_NAME, branch: 'pick', detail: { score, other: Math.max(scoreA, scoreB) } };
    },
  };
};
