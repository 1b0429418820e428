import { checkInt, checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ServiceInstance } from '../registry/registry.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import type { ClusterStrategy } from './cluster.js';

/** The name this strategy is registered under. */
export const TYPE_NAME = 'forking';

/**
 * Hedged requests (Dubbo's forking, with a delay as in "The Tail at Scale"): the call goes to
 * one provider; if no answer came within `hedgeDelayMs`, another attempt goes to another
 * provider, up to `forks` in all; the first success wins and the others are cancelled through
 * the cancellation path (their providers' handlers see ctx.signal fire). `hedgeDelayMs: 0`
 * starts them all at once. Only idempotent methods are hedged — anything else gets a single
 * attempt, since running it twice could do the work twice. Every extra attempt is paid for from
 * the retry budget. Streams are not hedged. Options: `{ forks, hedgeDelayMs }`.
 */
export const createForkingCluster: ExtensionFactory<ClusterStrategy> = (options) => {
  checkKnownKeys('forking cluster options', options, ['forks', 'hedgeDelayMs']);
  const forks = checkInt('forking forks', options['forks'], 1, 16, 2);
  const hedgeDelayMs = checkInt('forking hedgeDelayMs', options['hedgeDelayMs'], 0, 600_000, 50);
  return {
    name: TYPE_NAME,
    invoke(call) {
      call.budget.deposit();
      if (!call.idempotent || call.stream || forks === 1) return call.send(call.select()!);
      return new Promise((resolve, reject) => {
        const tried = new Set<ServiceInstance>();
        const attempts: AbortController[] = [];
        const errors: unknown[] = [];
        let settled = false;
        let timer: NodeJS.Timeout | undefined;
        const finish = (winner?: AbortController): void => {
          settled = true;
          clearTimeout(timer);
          for (const attempt of attempts) if (attempt !== winner) attempt.abort(new RpcError(RpcCode.CANCELLED, 'another hedged attempt answered first'));
        };
        const launch = (): void => {
          if (settled || attempts.length >= forks) return;
          const provider = call.select(tried);
          if (provider === undefined || (attempts.length > 0 && !call.budget.withdraw())) return;
          tried.add(provider);
          const controller = new AbortController();
          attempts.push(controller);
          call.send(provider, { signal: controller.signal }).then(
            (value) => {
              if (settled) return;
              finish(controller);
              resolve(value);
            },
            (error: unknown) => {
              if (settled) return;
              errors.push(error);
              if (errors.length === attempts.length && (attempts.length >= forks || call.select(tried) === undefined)) {
                finish();
                reject(error);
              } else {
                launch();
              }
            },
          );
          if (attempts.length < forks) timer = setTimeout(launch, hedgeDelayMs);
        };
        launch();
      });
    },
  };
};
