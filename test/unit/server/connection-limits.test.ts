import { EchoService } from '../../fixtures/services.js';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { createServer } from '../../../src/server/server.js';
import { fitToFdLimit, fdSoftLimit } from '../../../src/server/fd-limit.js';
import { ConnectionRefusals } from '../../../src/server/refusals.js';
import { ConnectionAdmission, DEFAULT_CONNECTION_LIMITS } from '../../../src/transport/admission.js';

describe('connection limits against the fd limit', () => {
  it('reads the soft limit of this process', () => {
    const soft = fdSoftLimit();
    expect(soft === undefined || (Number.isInteger(soft) && soft > 0)).toBe(true);
  });

  it('lowers maxConnections to the descriptors left after the headroom, per transport, and the per-address limit to half of it', () => {
    expect(fitToFdLimit(DEFAULT_CONNECTION_LIMITS, 1, 1024)).toEqual({
      limits: { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 819, maxConnectionsPerAddress: 409 },
      lowered: { softLimit: 1024, from: { maxConnections: 10_000, maxConnectionsPerAddress: 1000 } },
    });
    expect(fitToFdLimit(DEFAULT_CONNECTION_LIMITS, 2, 256).limits).toMatchObject({ maxConnections: 96, maxConnectionsPerAddress: 48 });
    // Limits that fit, and an unknown or unlimited fd limit, are left alone.
    const small = { ...DEFAULT_CONNECTION_LIMITS, maxConnections: 500, maxConnectionsPerAddress: 500 };
    expect(fitToFdLimit(small, 1, 1024)).toEqual({ limits: small });
    expect(fitToFdLimit(DEFAULT_CONNECTION_LIMITS, 1, undefined)).toEqual({ limits: DEFAULT_CONNECTION_LIMITS });
  });

  it('limits are checked by name: the connection age may be 0 (none), the idle timeout may not', async () => {
    const base = { services: [{}], registry: false as const, config: false as const, log: false as const };
    await expect(createServer({ ...base, limits: { maxConnectionAgeMs: -1 } })).rejects.toThrow(
      /invalid limits\.maxConnectionAgeMs: -1 \(allowed: an integer from 0 to/,
    );
    await expect(createServer({ ...base, limits: { idleTimeoutMs: 0 } })).rejects.toThrow(/invalid limits\.idleTimeoutMs: 0 \(allowed: an integer from 1 to/);
    await expect(createServer({ ...base, limits: { maxConnectionAge: 1 } as never })).rejects.toThrow(
      /unknown option limits\.maxConnectionAge \(known: .*maxConnectionAgeMs, maxConnectionAgeGraceMs/,
    );
  });
});

describe('refused connections', () => {
  it('are counted by transport and limit, and logged at once and then at most once per 5 s with the count', () => {
    vi.useFakeTimers();
    try {
      const lines: Array<{ refused: Record<string, number>; msg: string }> = [];
      const log = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString())), done()) }));
      const refusals = new ConnectionRefusals(log);
      const admission = new ConnectionAdmission({ ...DEFAULT_CONNECTION_LIMITS, maxConnections: 3, maxConnectionsPerAddress: 2 }, refusals.listener('grpc'));
      for (let i = 0; i < 100; i++) admission.admit('10.0.0.1');
      admission.admit('10.0.0.2');
      admission.admit('10.0.0.3');
      expect(refusals.counts()).toEqual([
        { transport: 'grpc', reason: 'maxConnectionsPerAddress', count: 98 },
        { transport: 'grpc', reason: 'maxConnections', count: 1 },
      ]);
      expect(lines.map((line) => line.refused)).toEqual([{ 'grpc maxConnectionsPerAddress': 1 }]);
      vi.advanceTimersByTime(5000);
      expect(lines.map((line) => line.refused)).toEqual([
        { 'grpc maxConnectionsPerAddress': 1 },
        { 'grpc maxConnectionsPerAddress': 97, 'grpc maxConnections': 1 },
      ]);
      expect(lines[1]!.msg).toMatch(/^98 connection\(s\) refused by the connection limits/);
      refusals.close();
      expect(lines).toHaveLength(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the limits option', () => {
  it('accepts every default when it is given explicitly, and names the key and range of a bad one', async () => {
    // A default outside its own allowed range can never be written down by an operator.
    const server = await createServer({ services: [new EchoService()], registry: false, config: false, limits: { ...DEFAULT_CONNECTION_LIMITS } });
    await server.close();
    for (const key of Object.keys(DEFAULT_CONNECTION_LIMITS) as (keyof typeof DEFAULT_CONNECTION_LIMITS)[]) {
      await expect(createServer({ services: [new EchoService()], registry: false, config: false, limits: { [key]: -5 } })).rejects.toThrow(
        new RegExp(`invalid limits\\.${key}: -5 \\(allowed: an integer from \\d+ to \\d+\\)`),
      );
    }
  });
});
