import { checkKnownKeys, checkLog } from '../common/validate.js';
import { RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { attemptAbsorbingFailure, type ClusterStrategy } from './cluster.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'failsafe';

/**
 * One attempt; when it fails for a provider-side reason the call resolves with `undefined`
 * and the error is logged (Dubbo's failsafe, for calls whose result nobody needs: audit logs,
 * metrics). Caller errors (bad input, a cancel) still fail the call. Streams behave as
 * failfast. Options: `{ log }` (a function; standard error by default).
 */
export const createFailsafeCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('failsafe cluster options', options, ['log']);
  const log = checkLog('failsafe log', options['log']);
  return {
    name: TYPE_NAME,
    invoke(call) {
      return attemptAbsorbingFailure(call, (error) =>
        log(`shuttle-rpc failsafe: ${call.invocation.service}.${call.invocation.method} failed and was ignored: ${RpcError.from(error).message}`),
      );
    },
  };
};
