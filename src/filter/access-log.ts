import { checkKnownKeys, checkLog } from '../common/validate.js';
import { RpcError, codeName } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Filter } from './filter.js';

/** The name this filter is registered under. */
export const TYPE_NAME = 'access-log';

/**
 * One line per call: side, service.method, outcome code and duration (Dubbo's accesslog).
 * Options: `{ log?: (line: string) => void }`, standard error by default. Opt-in: add
 * `'access-log'` to a side's `filters`.
 */
export const createAccessLogFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('access-log filter options', options, ['log']);
  const log = checkLog('access-log option log', options['log']);
  return {
    name: TYPE_NAME,
    order: -2000,
    sides: ['consumer', 'provider'],
    invoke(invocation, next) {
      const started = performance.now();
      const peer = invocation.peer === undefined ? '' : ` from ${invocation.peer.address}:${invocation.peer.port}`;
      const done = (outcome: string): void =>
        log(
          `${new Date().toISOString()} ${invocation.side} ${invocation.service}.${invocation.method}${peer} ${outcome} ${(performance.now() - started).toFixed(1)}ms`,
        );
      return next(invocation).then(
        (value) => {
          done('ok');
          return value;
        },
        (error: unknown) => {
          done(codeName(RpcError.from(error).code).replaceAll(' ', '_'));
          throw error;
        },
      );
    },
  };
};
