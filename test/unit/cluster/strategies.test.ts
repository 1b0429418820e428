import { describe, expect, it } from 'vitest';
import { TRANSPARENT_RETRIES } from '../../../src/cluster/cluster.js';
import { RetryBudget } from '../../../src/cluster/retry-budget.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { cluster, fakeCall } from '../../helpers/cluster.js';

const unavailable = (details: Record<string, unknown> = {}) => new RpcError(RpcCode.UNAVAILABLE, 'down', { details });

describe('failover', () => {
  it('retries on another provider and returns the first success', async () => {
    const { call, sent } = fakeCall(3, async (provider) => (provider.port === 1 ? Promise.reject(unavailable()) : `ok from ${provider.port}`));
    expect(await cluster('failover').invoke(call)).toBe('ok from 2');
    expect(sent.map((entry) => entry.port)).toEqual([1, 2]);
  });

  it('never runs a non-idempotent call twice, unless it provably never reached a handler', async () => {
    const lost = fakeCall(3, async () => Promise.reject(unavailable({ maybeExecuted: true })), { idempotent: false });
    await expect(cluster('failover').invoke(lost.call)).rejects.toThrow(/down/);
    expect(lost.sent).toHaveLength(1);
    const refused = fakeCall(3, async (provider) => (provider.port === 1 ? Promise.reject(unavailable({ neverSent: true })) : 'ok'), { idempotent: false });
    expect(await cluster('failover').invoke(refused.call)).toBe('ok');
    expect(refused.sent).toHaveLength(2);
  });

  it('does not retry caller errors or non-retryable codes', async () => {
    for (const code of [RpcCode.INVALID_ARGUMENT, RpcCode.NOT_FOUND, RpcCode.INTERNAL, RpcCode.UNAUTHENTICATED]) {
      const { call, sent } = fakeCall(3, async () => Promise.reject(new RpcError(code, 'no')));
      await expect(cluster('failover').invoke(call)).rejects.toMatchObject({ code });
      expect(sent).toHaveLength(1);
    }
  });

  it('stops at the retry limit and at the last provider', async () => {
    const many = fakeCall(10, async () => Promise.reject(unavailable()));
    await expect(cluster({ type: 'failover', options: { retries: 3, baseMs: 0 } }).invoke(many.call)).rejects.toThrow(/down/);
    expect(many.sent).toHaveLength(4);
    const two = fakeCall(2, async () => Promise.reject(unavailable()));
    await expect(cluster({ type: 'failover', options: { retries: 5, baseMs: 0 } }).invoke(two.call)).rejects.toThrow(/down/);
    expect(two.sent).toHaveLength(2);
  });

  it('waits for the provider’s retry-after hint, but never past the deadline', async () => {
    const hinted = fakeCall(2, async (provider) =>
      provider.port === 1 ? Promise.reject(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'busy', { retryAfterMs: 80, details: { neverSent: true } })) : 'ok',
    );
    expect(await cluster('failover').invoke(hinted.call)).toBe('ok');
    expect(hinted.sent[1]!.at - hinted.sent[0]!.at).toBeGreaterThanOrEqual(75);
    const late = fakeCall(
      2,
      async () => Promise.reject(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'busy', { retryAfterMs: 500, details: { neverSent: true } })),
      { deadline: Date.now() + 100 },
    );
    await expect(cluster('failover').invoke(late.call)).rejects.toThrow(/busy/);
    expect(late.sent).toHaveLength(1);
  });

  it('retries an overloaded answer on another provider at most once', async () => {
    const { call, sent } = fakeCall(5, async () => Promise.reject(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'full', { details: { neverSent: true } })));
    await expect(cluster({ type: 'failover', options: { retries: 4, baseMs: 0 } }).invoke(call)).rejects.toThrow(/full/);
    expect(sent).toHaveLength(2);
  });

  it('retries the first failure of a fresh client at once (the budget starts full)', async () => {
    const { call, sent } = fakeCall(3, async (provider) => (provider.port === 1 ? Promise.reject(unavailable()) : 'ok'));
    expect(await cluster({ type: 'failover', options: { baseMs: 0 } }).invoke(call)).toBe('ok');
    expect(sent).toHaveLength(2);
    expect(call.budget.retries).toBe(1);
  });

  it('stops retrying once failures drain the budget to half, whatever the number of providers', async () => {
    const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    let attempts = 0;
    const calls = 2000;
    for (let i = 0; i < calls; i++) {
      const { call, sent } = fakeCall(5, async () => Promise.reject(unavailable()), { budget });
      await cluster({ type: 'failover', options: { baseMs: 0 } })
        .invoke(call)
        .catch(() => {});
      attempts += sent.length;
    }
    // 10 tokens, retries while more than 5 remain: calls 1-2 retry 3 times in all, then none.
    expect(attempts).toBe(calls + 3);
    expect(budget.tokens).toBe(0);
  });

  it('retries never-sent attempts without spending the budget, a few per call', async () => {
    const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    for (let i = 0; i < 5; i++) budget.recordFailure(); // throttled: no paid retry allowed
    // All of ten providers refusing: the first attempt and TRANSPARENT_RETRIES free retries, then
    // the paid ones the throttle refuses.
    const fleet = fakeCall(10, async () => Promise.reject(unavailable({ neverSent: true })), { budget });
    await expect(cluster('failover').invoke(fleet.call)).rejects.toThrow(/down/);
    expect(fleet.sent).toHaveLength(1 + TRANSPARENT_RETRIES);
    expect(budget.refused).toBe(1);
    const refused = fakeCall(3, async (provider) => (provider.port < 3 ? Promise.reject(unavailable({ neverSent: true })) : 'ok'), {
      idempotent: false,
      budget,
    });
    expect(await cluster('failover').invoke(refused.call)).toBe('ok');
    expect(refused.sent).toHaveLength(3);
    expect(budget.refused).toBe(1);
    expect(budget.tokens).toBe(5.1);
    // failfast makes the same free retries, and no other.
    const single = fakeCall(10, async () => Promise.reject(unavailable({ neverSent: true })));
    await expect(cluster('failfast').invoke(single.call)).rejects.toThrow(/down/);
    expect(single.sent).toHaveLength(1 + TRANSPARENT_RETRIES);
    // A refusal by an open breaker is not retried for free: the other breakers are likely open too.
    const drained = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    for (let i = 0; i < 5; i++) drained.recordFailure();
    const open = fakeCall(10, async () => Promise.reject(unavailable({ neverSent: true, breakerOpen: true })), { budget: drained });
    await expect(cluster('failover').invoke(open.call)).rejects.toThrow(/down/);
    expect(open.sent).toHaveLength(1);
    const failed = fakeCall(10, async () => Promise.reject(unavailable()));
    await expect(cluster('failfast').invoke(failed.call)).rejects.toThrow(/down/);
    expect(failed.sent).toHaveLength(1);
  });

  it('rejects with CANCELLED, not the abort reason, when the caller aborts between attempts', async () => {
    const controller = new AbortController();
    const { call } = fakeCall(
      3,
      async (provider) => {
        if (provider.port === 1) {
          controller.abort();
          throw new RpcError(RpcCode.CANCELLED, 'cancelled by the caller');
        }
        return 'ok';
      },
      { signal: controller.signal },
    );
    await expect(cluster('failover').invoke(call)).rejects.toMatchObject({ code: RpcCode.CANCELLED });
  });
});

describe('forking (hedging)', () => {
  it('starts a second attempt after the hedge delay, takes the first answer and cancels the loser', async () => {
    const cancelled: number[] = [];
    const { call, sent } = fakeCall(
      3,
      (provider, _attempt, signal) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve(`from ${provider.port}`), provider.port === 1 ? 500 : 20);
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            cancelled.push(provider.port);
          });
        }),
    );
    const started = Date.now();
    expect(await cluster({ type: 'forking', options: { hedgeDelayMs: 30 } }).invoke(call)).toBe('from 2');
    expect(Date.now() - started).toBeLessThan(300);
    expect(sent.map((entry) => entry.port)).toEqual([1, 2]);
    expect(cancelled).toEqual([1]);
  });

  it('does not hedge a non-idempotent call', async () => {
    const { call, sent } = fakeCall(3, () => new Promise((resolve) => setTimeout(() => resolve('done'), 80)), { idempotent: false });
    expect(await cluster({ type: 'forking', options: { hedgeDelayMs: 10 } }).invoke(call)).toBe('done');
    expect(sent).toHaveLength(1);
  });
});

describe('forking: safety and settling', () => {
  it('settles when the first attempt fails fast and the budget refuses a second', async () => {
    const budget = new RetryBudget({ ratio: 0.1, maxTokens: 10 });
    for (let i = 0; i < 5; i++) budget.recordFailure();
    const { call, sent } = fakeCall(3, async () => Promise.reject(unavailable()), { budget, deadline: Date.now() + 1000 });
    const started = Date.now();
    await expect(cluster({ type: 'forking', options: { hedgeDelayMs: 10 } }).invoke(call)).rejects.toThrow(/down/);
    expect(Date.now() - started).toBeLessThan(500);
    expect(sent).toHaveLength(1);
  });

  it('settles by the deadline even when no attempt ever answers', async () => {
    const { call, sent } = fakeCall(3, () => new Promise(() => {}), { deadline: Date.now() + 100 });
    await expect(cluster({ type: 'forking', options: { hedgeDelayMs: 20, forks: 3 } }).invoke(call)).rejects.toMatchObject({ code: RpcCode.DEADLINE_EXCEEDED });
    expect(sent).toHaveLength(3);
    expect(sent.every((attempt) => attempt.signal?.aborted)).toBe(true);
  });

  it('retries a non-idempotent call only when its attempt never reached a provider', async () => {
    const refused = fakeCall(3, async (provider) => (provider.port === 1 ? Promise.reject(unavailable({ neverSent: true })) : 'ok'), { idempotent: false });
    expect(await cluster({ type: 'forking', options: { hedgeDelayMs: 10 } }).invoke(refused.call)).toBe('ok');
    expect(refused.sent).toHaveLength(2);
    const lost = fakeCall(3, async () => Promise.reject(unavailable({ maybeExecuted: true })), { idempotent: false });
    await expect(cluster({ type: 'forking', options: { hedgeDelayMs: 10 } }).invoke(lost.call)).rejects.toThrow(/down/);
    expect(lost.sent).toHaveLength(1);
    const invalid = fakeCall(3, async () => Promise.reject(new RpcError(RpcCode.INVALID_ARGUMENT, 'bad')));
    await expect(cluster({ type: 'forking', options: { hedgeDelayMs: 10 } }).invoke(invalid.call)).rejects.toThrow(/bad/);
    expect(invalid.sent).toHaveLength(1);
  });
});

describe('broadcast', () => {
  it('calls every provider and tolerates the configured share of failures', async () => {
    const { call, sent } = fakeCall(4, async (provider) => (provider.port === 4 ? Promise.reject(unavailable()) : provider.port));
    await expect(cluster('broadcast').invoke(call)).rejects.toThrow(/broadcast: 1 of 4 providers failed/);
    expect(sent).toHaveLength(4);
    const tolerant = fakeCall(4, async (provider) => (provider.port === 4 ? Promise.reject(unavailable()) : provider.port));
    expect(await cluster({ type: 'broadcast', options: { failurePercent: 25 } }).invoke(tolerant.call)).toEqual([1, 2, 3]);
  });
});

describe('failsafe and failback', () => {
  it('failsafe swallows provider failures (logged) but not caller errors', async () => {
    const lines: string[] = [];
    const strategy = cluster({ type: 'failsafe', options: { log: (line: string) => lines.push(line) } });
    expect(await strategy.invoke(fakeCall(2, async () => Promise.reject(unavailable())).call)).toBeUndefined();
    expect(lines[0]).toMatch(/failed and was ignored: \[unavailable\] down/);
    await expect(strategy.invoke(fakeCall(2, async () => Promise.reject(new RpcError(RpcCode.INVALID_ARGUMENT, 'bad'))).call)).rejects.toThrow(/bad/);
  });

  it('failback answers at once and retries in the background until it gets through', async () => {
    let failures = 1;
    const { call, sent } = fakeCall(2, async () => (failures-- > 0 ? Promise.reject(unavailable()) : 'delivered'));
    expect(await cluster({ type: 'failback', options: { intervalMs: 20 } }).invoke(call)).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sent).toHaveLength(2);
  });
});
