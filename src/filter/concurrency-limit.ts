import { checkInt, checkKnownKeys, MAX_TIMER_MS } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../spi/extension-registry.js';
import type { Filter } from './filter.js';
import { onStreamEnd } from './stream-end.js';

/** The name this filter is registered under. */
export const TYPE_NAME = 'concurrency-limit';

/**
 * Caps the calls a provider runs at once (Dubbo's `executes`), per method or for the whole
 * provider. A call over the cap is refused at once with RESOURCE_EXHAUSTED and a retry-after
 * hint rather than queued, so a consumer can try a less busy worker — the right answer for a
 * GPU worker whose batch slots are full. A streaming call holds its slot until the stream
 * ends. Options: `{ max?: number, perMethod?: boolean,
 * retryAfterMs?: number }`; without `max` it does nothing.
 */
export const createConcurrencyLimitFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('concurrency-limit filter options', options, ['max', 'perMethod', 'retryAfterMs']);
  const max = checkInt('concurrency-limit option max', options['max'], 1, 1_000_000);
  const perMethod = options['perMethod'] === true;
  const retryAfterMs = checkInt('concurrency-limit option retryAfterMs', options['retryAfterMs'], 0, MAX_TIMER_MS, 100);
  const running = new Map<string, number>();
  return {
    name: TYPE_NAME,
    order: -500,
    sides: ['provider'],
    active: max !== undefined,
    invoke(invocation, next) {
      if (max === undefined) return next(invocation);
      const key = perMethod ? `${invocation.service}.${invocation.method}` : '';
      const now = running.get(key) ?? 0;
      if (now >= max) {
        return Promise.reject(
          new RpcError(RpcCode.RESOURCE_EXHAUSTED, `${perMethod ? `${invocation.service}.${invocation.method}` : 'provider'} is at its limit of ${max} concurrent calls`, {
            retryAfterMs,
            // Refused before the handler ran: safe to retry elsewhere, idempotent or not.
            details: { limit: max, neverSent: true },
          }),
        );
      }
      running.set(key, now + 1);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        running.set(key, running.get(key)! - 1);
      };
      if (!invocation.stream) return next(invocation).finally(release);
      // A stream holds its slot until it ends, fails or is cancelled, not only until it opens:
      // a generation occupies the GPU for as long as it streams.
      return next(invocation).then(
        (iterable) => onStreamEnd(iterable as AsyncIterable<unknown>, release),
        (error: unknown) => {
          release();
          throw error;
        },
      );
    },
  };
};
