import { afterEach, describe, expect, it, vi } from 'vitest';
import { monotonicNow } from '../../../src/common/clock.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { cluster, fakeCall } from '../../helpers/cluster.js';
import { HOUR_MS, stepWallClock } from '../../helpers/wall-clock.js';

/*
 * A call's deadline is a time on the monotonic clock: a wall-clock step during the call neither
 * spends its time nor gives it more.
 */
afterEach(() => vi.restoreAllMocks());

describe('retries across a wall-clock step forward by an hour', () => {
  for (const [name, error] of [
    ['failover', new RpcError(RpcCode.UNAVAILABLE, 'down')],
    ['a transparent retry', new RpcError(RpcCode.UNAVAILABLE, 'refused', { details: { neverSent: true } })],
  ] as const) {
    it(`still happen for a call with 5 s left (${name})`, async () => {
      const { call, sent } = fakeCall(
        2,
        async (provider) => {
          if (provider.port !== 1) return 'ok';
          stepWallClock(HOUR_MS);
          throw error;
        },
        { deadline: monotonicNow() + 5000 },
      );
      expect(await cluster('failover').invoke(call)).toBe('ok');
      expect(sent.map((entry) => entry.port)).toEqual([1, 2]);
    });
  }
});
