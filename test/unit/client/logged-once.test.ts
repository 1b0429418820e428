import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import type { Logger } from '../../../src/log/log.js';
import { violationListener } from '../../../src/client/violations.js';
import { doubtListener } from '../../../src/client/doubts.js';
import type { Doubt } from '../../../src/loadbalance/believed.js';

/** A logger that counts its `warn` lines by provider. */
function countingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = { warn: (fields: { provider: string }) => lines.push(fields.provider) } as unknown as Logger;
  return { log, lines };
}

describe('lines logged once per provider, under address churn', () => {
  it('a provider breaking the protocol is logged once, and still after 100,000 other addresses have been', () => {
    const { log, lines } = countingLog();
    const violated = violationListener(log);
    const error = new RpcError(RpcCode.INTERNAL, 'bad frame');
    violated('10.0.0.1:1', error);
    violated('10.0.0.1:1', error);
    expect(lines).toEqual(['10.0.0.1:1']);
    for (let i = 0; i < 100_000; i++) violated(`10.1.${i >> 8}.${i & 255}:20880`, error);
    // Providers restarting on new ports for weeks: the newest one is still reported.
    violated('10.0.0.2:1', error);
    expect(lines.at(-1)).toBe('10.0.0.2:1');
    expect(lines).toHaveLength(100_002);
  });

  it('a doubted figure is logged once per provider and figure, and still after 100,000 others', () => {
    const { log, lines } = countingLog();
    const doubted = doubtListener(log);
    const doubt = (address: string): Doubt => ({ address, field: 'slots', claimed: 1e9, believed: 8, reason: 'too many' }) as unknown as Doubt;
    doubted(doubt('10.0.0.1:1'));
    doubted(doubt('10.0.0.1:1'));
    for (let i = 0; i < 100_000; i++) doubted(doubt(`10.1.${i >> 8}.${i & 255}:20880`));
    doubted(doubt('10.0.0.2:1'));
    expect(lines[0]).toBe('10.0.0.1:1');
    expect(lines.at(-1)).toBe('10.0.0.2:1');
    expect(lines).toHaveLength(100_002);
  });
});
