import { checkInt, checkKnownKeys, MAX_TIMER_MS } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import type { Filter } from './filter.js';
import { RetryAfterEstimator } from './retry-after.js';
import { onStreamEnd } from './stream-end.js';
import { monotonicNow } from '../common/clock.js';

/** The name this filter is registered under. */
export const TYPE_NAME = 'concurrency-limit';

/** The service time a provider assumes until its first call completes (ms). */
const INITIAL_SERVICE_MS = 100;

/**
 * Caps the calls a provider runs at once (Dubbo's `executes`), per method or for the whole
 * provider. A call over the cap is refused at once with RESOURCE_EXHAUSTED rather than
 * queued, so a consumer can try a less busy worker — the right answer for a GPU worker whose
 * batch slots are full. The refusal's retry-after hint says when a slot is likely to be free,
 * from the slots, the mean service time of the calls that completed and the callers already
 * refused (retry-after.ts), bounded and jittered. A streaming call holds its slot until the
 * stream ends. Options: `{ max?: number, perMethod?: boolean, minRetryAfterMs?: number (5),
 * maxRetryAfterMs?: number (10 000) }`; without `max` it does nothing.
 */
export const createConcurrencyLimitFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('concurrency-limit filter options', options, ['max', 'perMethod', 'minRetryAfterMs', 'maxRetryAfterMs']);
  const max = checkInt('concurrency-limit option max', options['max'], 1, 1_000_000);
  const perMethod = options['perMethod'] === true;
  const maxMs = checkInt('concurrency-limit option maxRetryAfterMs', options['maxRetryAfterMs'], 1, MAX_TIMER_MS, 10_000);
  const minMs = checkInt('concurrency-limit option minRetryAfterMs', options['minRetryAfterMs'], 0, maxMs, Math.min(5, maxMs));
  const bounds = { initialServiceMs: INITIAL_SERVICE_MS, minMs, maxMs };
  const slots = new Map<string, { running: number; estimator: RetryAfterEstimator }>();
  return {
    name: TYPE_NAME,
    order: -500,
    sides: ['provider'],
    active: max !== undefined,
    invoke(invocation, next) {
      if (max === undefined) return next(invocation);
      const key = perMethod ? `${invocation.service}.${invocation.method}` : '';
      let slot = slots.get(key);
      if (slot === undefined) {
        slot = { running: 0, estimator: new RetryAfterEstimator(bounds) };
        slots.set(key, slot);
      }
      const held = slot;
      if (held.running >= max) {
        return Promise.reject(
          new RpcError(
            RpcCode.RESOURCE_EXHAUSTED,
            `${perMethod ? `${invocation.service}.${invocation.method}` : 'provider'} is at its limit of ${max} concurrent calls`,
            {
              retryAfterMs: held.estimator.refused(max),
              // Refused before the handler ran: safe to retry elsewhere, idempotent or not.
              details: { limit: max, neverSent: true },
            },
          ),
        );
      }
      held.running++;
      const started = monotonicNow();
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        held.running--;
        held.estimator.completed(monotonicNow() - started);
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
