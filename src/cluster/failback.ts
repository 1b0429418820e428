import { checkInt, checkKnownKeys, checkLog } from '../common/validate.js';
import { RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { isProviderFailure } from './provider-health.js';
import { attemptAbsorbingFailure, type ClusterStrategy } from './cluster.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'failback';

/**
 * One attempt; if it fails for a provider-side reason, the call resolves with `undefined` at
 * once and is retried in the background (Dubbo's failback, for notifications that must arrive
 * eventually). Background retries go through failover (same safety rules and retry budget),
 * every `intervalMs`, up to `retries` rounds; at most `maxPending` calls wait, beyond which new
 * failures are dropped and logged — a bounded queue, never unbounded memory. Streams behave as
 * failfast. Options: `{ retries, intervalMs, maxPending, log }`.
 */
export const createFailbackCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('failback cluster options', options, ['retries', 'intervalMs', 'maxPending', 'log']);
  const rounds = checkInt('failback retries', options['retries'], 1, 100, 3);
  const intervalMs = checkInt('failback intervalMs', options['intervalMs'], 1, 3_600_000, 5000);
  const maxPending = checkInt('failback maxPending', options['maxPending'], 1, 1_000_000, 1000);
  const log = checkLog('failback log', options['log']);
  let pending = 0;
  return {
    name: TYPE_NAME,
    invoke(call) {
      return attemptAbsorbingFailure(call, (error) => {
        const where = `${call.invocation.service}.${call.invocation.method}`;
        if (pending >= maxPending) {
          log(`shuttle-rpc failback: ${maxPending} calls already waiting; dropped ${where}: ${RpcError.from(error).message}`);
          return;
        }
        pending++;
        const retry = (round: number): void => {
          const timer = setTimeout(() => {
            const provider = call.select();
            // A background retry is a retry: it is paid for from the budget like any other.
            if (provider === undefined || !call.budget.allowRetry()) {
              pending--;
              log(`shuttle-rpc failback: no provider or no retry budget for ${where}; dropped`);
              return;
            }
            call.send(provider).then(
              () => pending--,
              (failure: unknown) => {
                if (round < rounds && isProviderFailure(failure)) retry(round + 1);
                else {
                  pending--;
                  log(`shuttle-rpc failback: gave up on ${where} after ${round} background attempts: ${RpcError.from(failure).message}`);
                }
              },
            );
          }, intervalMs);
          timer.unref();
        };
        retry(1);
      });
    },
  };
};
