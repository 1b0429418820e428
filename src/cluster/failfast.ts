import { checkKnownKeys } from '../common/validate.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { singleAttempt, type ClusterStrategy } from './cluster.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'failfast';

/** One attempt on one provider; its failure is the call's failure (Dubbo's failfast). */
export const createFailfastCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('failfast cluster options', options, []);
  return {
    name: TYPE_NAME,
    invoke: singleAttempt,
  };
};
