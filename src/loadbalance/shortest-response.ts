import { checkKnownKeys } from '../common/validate.js';
import { ENVIRONMENT_KEYS, environmentOption } from './environment.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { LoadBalancer, ProviderView } from './loadbalance.js';
import { busyCalls, pickRandom, withRoom } from './weights.js';

/** The name this balancer is registered under. */
export const TYPE_NAME = 'shortest-response';

/**
 * Lowest expected wait (Dubbo's shortestresponse): this consumer's average latency to the
 * provider for the called method over about the last 10 s, times (calls in flight + 1): a
 * worker's methods differ by orders of magnitude (a 10 s generation, a 5 ms embedding), and
 * one average for all of them would send every call to whichever worker ran no slow one lately. A provider with no recent
 * call is estimated at the average of the others, so it gets tried rather than avoided or
 * flooded. Ties at random; providers at their concurrency cap are skipped while others have
 * room. Options: `{ clock, random }`.
 */
export const createShortestResponseBalancer: ExtensionFactory<LoadBalancer> = (options) => {
  checkKnownKeys('shortest-response loadbalance options', options, ENVIRONMENT_KEYS);
  const env = environmentOption(TYPE_NAME, options);
  return {
    name: TYPE_NAME,
    select(all: readonly ProviderView[], invocation) {
      if (all.length === 1) return { provider: all[0]!, policy: TYPE_NAME, branch: 'only' };
      const providers = withRoom(all);
      const now = env.now();
      const latencies = providers.map((provider) =>
        provider.stats.methodLatencyMs === undefined
          ? provider.stats.averageLatencyMs(now)
          : provider.stats.methodLatencyMs(invocation.service, invocation.method, now),
      );
      const known = latencies.filter((latency): latency is number => latency !== undefined);
      const fallback = known.length === 0 ? 1 : known.reduce((sum, latency) => sum + latency, 0) / known.length;
      let best: ProviderView[] = [];
      let bestCost = Infinity;
      providers.forEach((provider, i) => {
        const cost = (latencies[i] ?? fallback) * (busyCalls(provider.stats) + 1);
        if (cost < bestCost) {
          bestCost = cost;
          best = [provider];
        } else if (cost === bestCost) best.push(provider);
      });
      return { provider: pickRandom(best, env.random), policy: TYPE_NAME, branch: 'pick', detail: { expectedMs: bestCost } };
    },
  };
};
