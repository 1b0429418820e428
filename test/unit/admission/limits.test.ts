import { describe, expect, it } from 'vitest';
import { AdmissionQueue } from '../../../src/admission/queue.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { flush, setup } from './setup.js';

describe('AdmissionQueue: bounds', () => {
  it('refuses RESOURCE_EXHAUSTED with a retry-after once maxQueued calls wait, and not before', async () => {
    const { ask, queue, refusals } = setup(1, { maxQueued: 3, tenantDefaults: { maxQueued: 3 } });
    const entries = Array.from({ length: 5 }, (_, i) => ask(`${i}`));
    await flush();
    expect(entries.slice(0, 4).every((entry) => entry.error === undefined)).toBe(true);
    expect(entries[4]!.error?.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(entries[4]!.error?.retryAfterMs).toBeGreaterThan(0);
    expect(entries[4]!.error?.message).toContain('maxQueued 3');
    expect(refusals).toEqual(['queue_full']);
    expect(queue.stats().queued).toBe(3);
  });

  it('bounds the estimated tokens waiting', async () => {
    const { ask, refusals } = setup(1, { maxQueuedTokens: 250 });
    ask('hold', { tokens: 1000 }); // admitted at once: running calls are not queued tokens
    const ok = ask('ok', { tokens: 200 });
    const over = ask('over', { tokens: 100 });
    await flush();
    expect(ok.error).toBeUndefined();
    expect(over.error?.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(refusals).toEqual(['queue_tokens']);
  });

  it("bounds one tenant's share of the queue, leaving room for the others", async () => {
    const { ask, refusals } = setup(1, { maxQueued: 10 });
    ask('hold');
    const heavy = Array.from({ length: 7 }, (_, i) => ask(`heavy-${i}`, { tenant: 'heavy' }));
    const light = ask('light', { tenant: 'light' });
    await flush();
    expect(heavy.filter((entry) => entry.error?.code === RpcCode.RESOURCE_EXHAUSTED)).toHaveLength(2);
    expect(light.error).toBeUndefined();
    expect(refusals).toEqual(['tenant_queue_full', 'tenant_queue_full']);
  });

  it('forgets tenants once idle, so many tenant names do not grow its memory', async () => {
    const { ask, queue, running, finish } = setup(4);
    for (let i = 0; i < 1000; i++) {
      ask(`t${i}`, { tenant: `tenant-${i}` });
      await flush();
      await finish();
    }
    expect(running).toHaveLength(0);
    expect(queue.stats().tenants).toBe(0);
  });

  it('forgets metered tenants once their bucket has refilled: 100,000 names that each spent tokens once leave a few records', async () => {
    // 6,000 tokens a minute: the 10 tokens each call spends refill in 100 ms.
    const { ask, queue, clock, finish } = setup(4, { tenantDefaults: { tokensPerMinute: 6000 } });
    let most = 0;
    for (let i = 0; i < 100_000; i++) {
      ask(`t${i}`, { tenant: `tenant-${i}` });
      await flush();
      await finish();
      clock.advance(1);
      most = Math.max(most, queue.stats().tenants);
    }
    // Tenants still refilling: those of the last 100 ms (100 calls), plus the sweep's lag.
    expect(most).toBeLessThan(300);
    clock.advance(1000);
    for (let i = 0; i < 200; i++) {
      ask(`again${i}`, { tenant: 'steady' });
      await flush();
      await finish();
    }
    expect(queue.stats().tenants).toBeLessThanOrEqual(1);
  });

  it('keeps a metered tenant that went idle with its bucket spent, so leaving does not reset its limit', async () => {
    const { ask, queue, clock, finish, order } = setup(4, { tenantDefaults: { tokensPerMinute: 600 } });
    ask('spend', { tenant: 'metered', tokens: 600 });
    await flush();
    // It really cost twice its estimate: the bucket is 600 tokens in debt (a minute to refill).
    await finish(1200);
    for (let i = 0; i < 50; i++) {
      ask(`other${i}`, { tenant: `other-${i}`, tokens: 1 });
      await flush();
      await finish();
    }
    clock.advance(30_000);
    // Half the debt is paid: were the tenant forgotten, it would start afresh with a full bucket.
    ask('again', { tenant: 'metered', tokens: 100, deadline: clock.now() + 60_000 });
    await flush();
    expect(order).not.toContain('again');
    expect(queue.stats().tenants).toBeGreaterThanOrEqual(1);
  });
});

describe('AdmissionQueue: deadlines and abort', () => {
  it('fails a waiting call DEADLINE_EXCEEDED at its own deadline and takes it out of the queue', async () => {
    const { ask, clock, queue, refusals } = setup(1);
    ask('hold');
    const late = ask('late', { deadline: 500 });
    const later = ask('later', { deadline: 900 });
    await flush();
    clock.advance(499);
    await flush();
    expect(late.error).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(late.error?.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(later.error).toBeUndefined();
    expect(queue.stats().queued).toBe(1);
    clock.advance(400);
    await flush();
    expect(later.error?.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(queue.stats()).toMatchObject({ queued: 0, queuedTokens: 0 });
    expect(refusals).toEqual(['deadline_exceeded', 'deadline_exceeded']);
    expect(clock.pending).toBe(0);
  });

  it('refuses a call whose deadline has already passed', async () => {
    const { ask, clock } = setup(1);
    clock.advance(100);
    const entry = ask('past', { deadline: 100 });
    await flush();
    expect(entry.error?.code).toBe(RpcCode.DEADLINE_EXCEEDED);
  });

  it('an aborted caller leaves the queue at once, with the abort reason when it is an RpcError', async () => {
    const { ask, queue, finish, order, clock } = setup(1);
    ask('hold');
    const plain = new AbortController();
    const typed = new AbortController();
    const first = ask('first', { signal: plain.signal });
    const second = ask('second', { signal: typed.signal });
    ask('third');
    await flush();
    plain.abort();
    typed.abort(new RpcError(RpcCode.CANCELLED, 'the HTTP client disconnected'));
    await flush();
    expect(first.error?.code).toBe(RpcCode.CANCELLED);
    expect(second.error?.message).toContain('HTTP client disconnected');
    expect(queue.stats().queued).toBe(1);
    expect(clock.pending).toBe(1); // only the third call's deadline timer is left
    await finish();
    expect(order).toEqual(['hold', 'third']);
  });

  it('refuses at once a call that is already aborted', async () => {
    const { ask } = setup(1);
    const entry = ask('x', { signal: AbortSignal.abort() });
    await flush();
    expect(entry.error?.code).toBe(RpcCode.CANCELLED);
  });
});

describe('AdmissionQueue: retry-after and deadline feasibility from the drain rate', () => {
  /** A queue with one slot whose calls have drained at one per 100 ms. */
  async function measured(options = {}) {
    const harness = setup(1, { maxQueued: 4, tenantDefaults: { maxQueued: 4 }, ...options });
    harness.ask('0');
    for (let i = 1; i <= 10; i++) {
      harness.ask(`${i}`);
      await flush();
      harness.clock.advance(100);
      await harness.finish();
    }
    return harness;
  }

  it('suggests retrying after the calls ahead have drained at the measured rate', async () => {
    const { ask } = await measured();
    for (let i = 0; i < 4; i++) ask(`queued-${i}`);
    const refused = ask('refused');
    await flush();
    // 4 calls ahead + itself at 0.01 calls/ms (measured over the last 10 releases).
    expect(refused.error?.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(refused.error?.retryAfterMs).toBe(500);
  });

  it('refuses at once a call that could not be admitted before its deadline, and queues one that could', async () => {
    const { ask, clock, queue, refusals } = await measured({ maxQueued: 100, tenantDefaults: { maxQueued: 100 } });
    for (let i = 0; i < 9; i++) ask(`queued-${i}`);
    const hopeless = ask('hopeless', { deadline: clock.now() + 500 });
    const patient = ask('patient', { deadline: clock.now() + 1500 });
    await flush();
    expect(hopeless.error?.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(hopeless.error?.retryAfterMs).toBe(1000);
    expect(refusals).toEqual(['deadline_unmeetable']);
    expect(patient.error).toBeUndefined();
    expect(queue.stats().queued).toBe(10);
  });

  it('uses the configured default retry-after before any drain has been measured', async () => {
    const { ask } = setup(1, { maxQueued: 0, defaultRetryAfterMs: 2500 });
    ask('hold');
    const refused = ask('refused');
    await flush();
    expect(refused.error?.retryAfterMs).toBe(2500);
  });
});

describe('AdmissionQueue: per-tenant caps', () => {
  it('holds a tenant at its concurrency cap while other tenants use the free slots', async () => {
    const { ask, order, running } = setup(3, { tenants: { capped: { maxConcurrent: 1 } } });
    ask('capped-0', { tenant: 'capped' });
    ask('capped-1', { tenant: 'capped' });
    ask('other-0', { tenant: 'other' });
    await flush();
    expect(order).toEqual(['capped-0', 'other-0']);
    running.shift()!.ticket.release();
    await flush();
    expect(order).toEqual(['capped-0', 'other-0', 'capped-1']);
  });

  it('holds a tenant over its tokens per minute until its bucket refills, then admits it on its own', async () => {
    const { ask, order, clock } = setup(10, { tenants: { metered: { tokensPerMinute: 600 } } });
    ask('m-0', { tenant: 'metered', tokens: 600 });
    ask('m-1', { tenant: 'metered', tokens: 60 });
    await flush();
    expect(order).toEqual(['m-0']);
    clock.advance(99); // 600 tokens a minute: 1 token per 100 ms
    await flush();
    expect(order).toEqual(['m-0']);
    clock.advance(1);
    await flush();
    expect(order).toEqual(['m-0', 'm-1']);
  });

  it('refuses at once, with the refill as its retry hint, a call of a tenant whose bucket refills only after the deadline', async () => {
    const { ask, order, refusals } = setup(10, { tenants: { metered: { tokensPerMinute: 60 } } });
    ask('m-0', { tenant: 'metered', tokens: 600 });
    // 600 tokens spent at 1 a second: the bucket is back above empty in 541 s, past a 60 s deadline.
    const late = ask('m-1', { tenant: 'metered', tokens: 10 });
    await flush();
    expect(order).toEqual(['m-0']);
    expect(late.error).toMatchObject({ code: RpcCode.RESOURCE_EXHAUSTED, retryAfterMs: 541_000, message: expect.stringContaining('tokensPerMinute (60)') });
    expect(refusals).toEqual(['deadline_unmeetable']);
  });
});

describe('AdmissionQueue: reserve for urgent calls', () => {
  it('keeps the reserved slots free of lower priorities and gives them to an urgent call at once', async () => {
    const { ask, order } = setup(4, { reserve: { priority: 5, slots: 2 } });
    for (let i = 0; i < 4; i++) ask(`low-${i}`, { priority: 0 });
    await flush();
    expect(order).toEqual(['low-0', 'low-1']);
    ask('urgent', { priority: 5 });
    await flush();
    expect(order).toEqual(['low-0', 'low-1', 'urgent']);
  });
});

describe('AdmissionQueue: overcommit for engines that schedule by priority', () => {
  it('starts urgent calls beyond a full fleet, up to the overcommit, while lower priorities wait for a release', async () => {
    const { ask, order, finish, queue } = setup(2, { overcommit: { priority: 5, slots: 2 } });
    ask('low-0', { priority: 0 });
    ask('low-1', { priority: 0 });
    ask('low-2', { priority: 0 });
    ask('urgent-0', { priority: 5 });
    ask('urgent-1', { priority: 9 });
    ask('urgent-2', { priority: 5 });
    await flush();
    expect(order).toEqual(['low-0', 'low-1', 'urgent-0', 'urgent-1']);
    expect(queue.stats()).toMatchObject({ running: 4, queued: 2 });
    // A release leaves the fleet over capacity: the next urgent call goes, the low one still waits.
    await finish();
    expect(order.at(-1)).toBe('urgent-2');
    await finish();
    await finish();
    expect(order.at(-1)).toBe('urgent-2');
    await finish();
    expect(order.at(-1)).toBe('low-2');
  });

  it('admits nobody into an empty fleet, urgent or not', async () => {
    const { ask, order, queue } = setup(0, { overcommit: { priority: 5, slots: 2 } });
    ask('urgent', { priority: 9 });
    await flush();
    expect(order).toEqual([]);
    expect(queue.stats().queued).toBe(1);
  });

  it('names a bad overcommit', () => {
    expect(() => new AdmissionQueue({ capacity: () => 1, overcommit: { priority: 5, slots: 0 } })).toThrow(
      /admission overcommit\.slots: 0 \(allowed: an integer from 1/,
    );
    expect(() => new AdmissionQueue({ capacity: () => 1, overcommit: { priority: 5, calls: 1 } as never })).toThrow(
      /unknown option admission overcommit\.calls/,
    );
  });
});

describe('AdmissionQueue: options', () => {
  it('names the bad option and what is allowed', () => {
    expect(() => new AdmissionQueue({ capacity: 3 as never })).toThrow(/admission capacity.*a function/);
    expect(() => new AdmissionQueue({ capacity: () => 1, maxQueued: -1 })).toThrow(/admission maxQueued: -1 \(allowed: an integer from 0/);
    expect(() => new AdmissionQueue({ capacity: () => 1, tenants: { t: { weight: 0 } } })).toThrow(/admission tenants\.t\.weight: 0/);
    expect(() => new AdmissionQueue({ capacity: () => 1, tenantDefaults: { burst: 1 } as never })).toThrow(/unknown option admission tenantDefaults\.burst/);
  });

  it('rejects a malformed request with the field named', () => {
    const queue = new AdmissionQueue({ capacity: () => 1 });
    expect(() => queue.admit({ tenant: '', tokens: 1, deadline: 1 })).toThrow(/admission request tenant/);
    expect(() => queue.admit({ tenant: 't', tokens: Number.NaN, deadline: 1 })).toThrow(/admission request tokens/);
    expect(() => queue.admit({ tenant: 't', tokens: 1, deadline: 1, priority: 10 })).toThrow(/admission request priority: 10/);
  });
});
