import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock, type Ticket } from '../../../src/admission/admission.js';
import { AdmissionQueue } from '../../../src/admission/queue.js';
import type { RpcError } from '../../../src/errors/errors.js';
import { HOUR_MS, sleep, stepWallClock } from '../../helpers/wall-clock.js';

/*
 * The admission queue's default clock is performance.now(): a wall-clock step changes neither a
 * queued call's deadline nor a tenant's tokens per minute. (A guard: it held before the clock
 * work too.)
 */
afterEach(() => vi.restoreAllMocks());

describe('the admission queue across a wall-clock step', () => {
  it('forward by an hour: a queued call with 2 s left waits, and is admitted when a slot frees', async () => {
    const slots = 1;
    const queue = new AdmissionQueue({ capacity: () => slots, clock: systemClock });
    const first = await queue.admit({ tenant: 'a', tokens: 10, deadline: systemClock.now() + 2000 });
    let outcome: Ticket | RpcError | undefined;
    queue.admit({ tenant: 'a', tokens: 10, deadline: systemClock.now() + 2000 }).then(
      (ticket) => (outcome = ticket),
      (error: RpcError) => (outcome = error),
    );
    stepWallClock(HOUR_MS);
    await sleep(50);
    expect(outcome).toBeUndefined();
    first.release();
    await sleep(10);
    expect(outcome).toBeDefined();
    expect((outcome as RpcError).code).toBeUndefined();
    (outcome as Ticket).release();
  });

  it("back by an hour: a tenant's tokens per minute refill in real time", async () => {
    const queue = new AdmissionQueue({ capacity: () => 10, clock: systemClock, tenants: { a: { tokensPerMinute: 600_000 } } });
    const spent = await queue.admit({ tenant: 'a', tokens: 600_000, deadline: systemClock.now() + 5000 });
    spent.release();
    stepWallClock(-HOUR_MS);
    // 600,000 a minute is 10 a millisecond: 1,000 tokens are back within about 100 ms.
    const started = performance.now();
    const next = await queue.admit({ tenant: 'a', tokens: 1000, deadline: systemClock.now() + 5000 });
    expect(performance.now() - started).toBeLessThan(1000);
    next.release();
  });
});
