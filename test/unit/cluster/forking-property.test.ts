import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { monotonicNow } from '../../../src/common/clock.js';
import { RetryBudget } from '../../../src/cluster/retry-budget.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { cluster, fakeCall } from '../../helpers/cluster.js';

/** How one fake provider answers: after `latencyMs`, unless it hangs; `deaf` ignores cancellation. */
const answer = fc.record({
  kind: fc.constantFrom('ok', 'unavailable', 'never-sent', 'maybe-executed', 'invalid', 'overloaded', 'hang'),
  latencyMs: fc.integer({ min: 0, max: 3000 }),
  deaf: fc.boolean(),
});

const schedule = fc.record({
  answers: fc.array(answer, { minLength: 1, maxLength: 5 }),
  forks: fc.integer({ min: 1, max: 4 }),
  hedgeDelayMs: fc.integer({ min: 0, max: 300 }),
  timeoutMs: fc.integer({ min: 1, max: 2000 }),
  idempotent: fc.boolean(),
  /** Provider-side failures already recorded in the client's budget (0: a fresh client). */
  drained: fc.integer({ min: 0, max: 10 }),
});

type Answer = { kind: string; latencyMs: number; deaf: boolean };

function failure(kind: string): RpcError {
  switch (kind) {
    case 'never-sent':
      return new RpcError(RpcCode.UNAVAILABLE, 'refused', { details: { neverSent: true } });
    case 'maybe-executed':
      return new RpcError(RpcCode.UNAVAILABLE, 'lost', { details: { maybeExecuted: true } });
    case 'invalid':
      return new RpcError(RpcCode.INVALID_ARGUMENT, 'bad');
    case 'overloaded':
      return new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'full', { retryAfterMs: 50 });
    default:
      return new RpcError(RpcCode.UNAVAILABLE, 'down');
  }
}

/** A fake attempt following `answer`: it does not enforce the deadline (the strategy must). */
function play(answer: Answer, signal: AbortSignal | undefined, log: { ended?: string }): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer =
      answer.kind === 'hang'
        ? undefined
        : setTimeout(() => {
            log.ended = answer.kind;
            if (answer.kind === 'ok') resolve('ok');
            else reject(failure(answer.kind));
          }, answer.latencyMs);
    if (!answer.deaf) {
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(new RpcError(RpcCode.CANCELLED, 'cancelled'));
      });
    }
  });
}

describe('forking under random fault schedules (virtual time)', () => {
  beforeAll(() => void vi.useFakeTimers());
  afterAll(() => void vi.useRealTimers());

  it('settles by the deadline + 50 ms, makes at most `forks` attempts, never repeats unsafe work, cancels losers', async () => {
    await fc.assert(
      fc.asyncProperty(schedule, async (s) => {
        vi.clearAllTimers();
        const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
        for (let i = 0; i < s.drained; i++) budget.recordFailure();
        const logs: Array<{ ended?: string; port: number; startedAfter: string[] }> = [];
        const ended: string[] = [];
        const started = monotonicNow();
        const deadline = started + s.timeoutMs;
        const { call, sent } = fakeCall(
          s.answers.length,
          (provider, _attempt, signal) => {
            const log = { port: provider.port, startedAfter: [...ended] } as { ended?: string; port: number; startedAfter: string[] };
            logs.push(log);
            const result = play(s.answers[provider.port - 1]!, signal, log);
            result.then(
              () => ended.push('ok'),
              () => ended.push(log.ended ?? 'cancelled'),
            );
            return result;
          },
          { idempotent: s.idempotent, budget, deadline },
        );
        let settledAt: number | undefined;
        let outcome: unknown;
        cluster({ type: 'forking', options: { forks: s.forks, hedgeDelayMs: s.hedgeDelayMs } })
          .invoke(call)
          .then(
            (value) => ((settledAt = monotonicNow()), (outcome = value)),
            (error: unknown) => ((settledAt = monotonicNow()), (outcome = error)),
          );
        await vi.advanceTimersByTimeAsync(s.timeoutMs + 50);
        expect(settledAt).toBeDefined();
        expect(settledAt!).toBeLessThanOrEqual(deadline + 50);
        expect(sent.length).toBeLessThanOrEqual(s.forks);
        if (outcome === 'ok') expect(logs.some((log) => log.ended === 'ok')).toBe(true);
        else expect(outcome).toBeInstanceOf(RpcError);
        // Every attempt still running when the call settled was cancelled.
        for (const attempt of sent) expect(attempt.signal?.aborted || logs[sent.indexOf(attempt)]!.ended !== undefined).toBe(true);
        if (!s.idempotent) {
          // A second attempt of a non-idempotent call only after attempts that never reached a provider.
          for (const log of logs.slice(1)) expect(log.startedAfter.filter((kind) => kind === 'never-sent').length).toBeGreaterThanOrEqual(logs.indexOf(log));
        }
      }),
      { numRuns: 10_000 },
    );
    // About 4 s on an idle machine: virtual time, no real waiting; the bound is for a loaded one.
  }, 60_000);
});
