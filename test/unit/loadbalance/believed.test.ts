import { describe, expect, it } from 'vitest';
import { doubtListener } from '../../../src/client/doubts.js';
import type { Logger } from '../../../src/log/log.js';
import { BELIEVED_FACTOR, believedInstances, type Doubt } from '../../../src/loadbalance/believed.js';
import { providerRecord } from '../../helpers/fake-transport.js';

describe('believed figures', () => {
  it('keeps an honest mixed fleet as it is (32, 16 and 4 slots)', () => {
    const fleet = [32, 16, 16, 4].map((slots, i) => providerRecord(i + 1, { metadata: { slots, prefillTokensPerSecond: slots * 2000 } }));
    expect(believedInstances(fleet)).toBe(fleet);
  });

  it('keeps an honest fleet of big and small GPUs 16x apart (256-slot engines beside 16-slot ones, the small ones the majority)', () => {
    const fleet = [256, 16, 16, 16, 16].map((slots, i) =>
      providerRecord(i + 1, { metadata: { slots, prefillTokensPerSecond: slots * 500, decodeBaseMs: slots === 256 ? 2 : 20 } }),
    );
    expect(believedInstances(fleet)).toBe(fleet);
  });

  it(`replaces a figure past ${BELIEVED_FACTOR}x the fleet's typical, or no number, by the typical one, and says so`, () => {
    const fleet = [
      providerRecord(1, { metadata: { slots: 1e308, prefillTokensPerSecond: Number.NaN, kvCapacityTokens: 400_000 } }),
      ...[2, 3, 4].map((port) => providerRecord(port, { metadata: { slots: 8, prefillTokensPerSecond: 20_000, kvCapacityTokens: 400_000 } })),
    ];
    const doubts: Doubt[] = [];
    const believed = believedInstances(fleet, (doubt) => doubts.push(doubt));
    expect(believed[0]!.metadata).toEqual({ slots: 8, prefillTokensPerSecond: 20_000, kvCapacityTokens: 400_000 });
    expect(believed.slice(1)).toEqual(fleet.slice(1));
    expect(doubts.map((doubt) => [doubt.address, doubt.field, doubt.believed])).toEqual([
      ['10.0.0.1:1', 'metadata.slots', 8],
      ['10.0.0.1:1', 'metadata.prefillTokensPerSecond', 20_000],
    ]);
  });

  it('logs a doubt once per provider and figure, however many snapshots repeat it', () => {
    const lines: unknown[] = [];
    const log = { warn: (fields: unknown) => lines.push(fields) } as unknown as Logger;
    const listener = doubtListener(log);
    const fleet = [providerRecord(1, { metadata: { slots: 1e308 } }), providerRecord(2, { metadata: { slots: 8 } })];
    for (let snapshot = 0; snapshot < 100; snapshot++) believedInstances(fleet, listener);
    expect(lines).toEqual([expect.objectContaining({ provider: '10.0.0.1:1', field: 'metadata.slots', believed: 8 })]);
  });
});
