import { checkInt, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { singleAttempt, type ClusterStrategy } from './cluster.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'broadcast';

/**
 * Every provider at once (Dubbo's broadcast: cache invalidation, config pushes, "load this
 * LoRA adapter everywhere"). Resolves with the results of the providers that answered, in
 * provider order, when at most `failurePercent` of them failed (0 by default: any failure
 * fails the call, with the first error and the count in its details). Streams are not
 * broadcast. Options: `{ failurePercent }`.
 */
export const createBroadcastCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('broadcast cluster options', options, ['failurePercent']);
  const failurePercent = checkInt('broadcast failurePercent', options['failurePercent'], 0, 100, 0);
  return {
    name: TYPE_NAME,
    async invoke(call) {
      if (call.stream) return singleAttempt(call);
      const outcomes = await Promise.allSettled(call.providers.map((provider) => call.send(provider)));
      const failures = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (failures.length > 0 && (failures.length * 100) / outcomes.length > failurePercent) {
        const first = RpcError.from(failures[0]!.reason);
        throw new RpcError(
          first.code === RpcCode.OK ? RpcCode.UNKNOWN : first.code,
          `broadcast: ${failures.length} of ${outcomes.length} providers failed; first: ${first.rawMessage}`,
          {
            cause: first,
            details: { failed: failures.length, providers: outcomes.length },
          },
        );
      }
      return outcomes.filter((outcome): outcome is PromiseFulfilledResult<unknown> => outcome.status === 'fulfilled').map((outcome) => outcome.value);
    },
  };
};
