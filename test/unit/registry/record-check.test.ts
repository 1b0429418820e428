import { describe, expect, it } from 'vitest';
import { RegistryInputGuard, WARNINGS_PER_WINDOW } from '../../../src/registry/input-guard.js';
import { checkInstance, checkLoad, RECORD_LIMITS } from '../../../src/registry/record-check.js';

const good = {
  service: 'inference.LLM',
  version: '1.0.0',
  group: '',
  host: '10.0.0.7',
  port: 20880,
  protocol: 'tcp',
  serializers: ['msgpack'],
  methods: [{ name: 'generate', stream: true, idempotent: false }],
  weight: 100,
  startTime: 1,
  metadata: { model: 'llama' },
};

describe('service records are checked with the rules of register', () => {
  it('accepts a well-formed record and drops a load field it carries', () => {
    expect(checkInstance({ ...good, load: { running: 1 } })).toEqual(good);
    expect(checkInstance({ ...good, host: '::1', endpoints: [{ protocol: 'grpc', port: 20881 }] })).toMatchObject({ host: '::1' });
  });

  it('keeps known fields only, so a field nested deeper than the stack never reaches a reader; refuses metadata nested past 32 levels', () => {
    const deep = JSON.parse(`${'['.repeat(30_000)}${']'.repeat(30_000)}`) as unknown;
    const stripped = checkInstance({ ...good, x: deep, __proto__: { polluted: true } }) as unknown as Record<string, unknown>;
    expect(stripped).toEqual(good);
    expect(() => JSON.stringify(stripped)).not.toThrow();
    const nested = (levels: number): Record<string, unknown> => {
      let value: Record<string, unknown> = {};
      for (let i = 1; i < levels; i++) value = { a: value };
      return value;
    };
    expect(checkInstance({ ...good, metadata: nested(RECORD_LIMITS.metadataDepth) })).toMatchObject({ service: good.service });
    expect(checkInstance({ ...good, metadata: nested(RECORD_LIMITS.metadataDepth + 1) })).toBe('metadata: nested more than 32 levels deep');
    expect(checkInstance({ ...good, metadata: { deep } })).toBe('metadata: nested more than 32 levels deep');
  });

  it.each([
    ['weight 1e308', { weight: 1e308 }, 'weight: 1e+308 is not a number from 1 to 10000'],
    ['weight Infinity', { weight: Infinity }, 'weight: Infinity is not a number from 1 to 10000'],
    ['weight 0', { weight: 0 }, 'weight: 0 is not a number from 1 to 10000'],
    ['port 70000', { port: 70000 }, 'port: 70000 is not a port from 1 to 65535'],
    ['port -1', { port: -1 }, 'port: -1 is not a port from 1 to 65535'],
    ['port 1.5', { port: 1.5 }, 'port: 1.5 is not a port from 1 to 65535'],
    ['a host with a space', { host: 'a b' }, 'host: "a b" is not a host name or IP address'],
    ['an IPv6 host with a zone', { host: 'fe80::1%eth0' }, 'host: "fe80::1%eth0" is not a host name or IP address'],
    ['host 0.0.0.0', { host: '0.0.0.0' }, 'host: "0.0.0.0" is the unspecified address, not an address a provider can be called at'],
    ['host ::', { host: '::' }, 'host: "::" is the unspecified address, not an address a provider can be called at'],
    ['host [::]', { host: '[::]' }, 'host: "[::]" is the unspecified address, not an address a provider can be called at'],
    ['a multicast host', { host: '224.0.0.1' }, 'host: "224.0.0.1" is a multicast address, not an address a provider can be called at'],
    ['an IPv6 multicast host', { host: 'ff02::1' }, 'host: "ff02::1" is a multicast address, not an address a provider can be called at'],
    ['the broadcast host', { host: '255.255.255.255' }, 'host: "255.255.255.255" is the broadcast address, not an address a provider can be called at'],
    ['an unknown protocol shape', { protocol: 'TCP!' }, 'protocol: "TCP!" is not a transport name'],
    ['an endpoint on port 0', { endpoints: [{ protocol: 'grpc', port: 0 }] }, 'endpoints[0]: an object is malformed'],
    [
      'too many methods',
      { methods: Array.from({ length: 1001 }, (_, i) => ({ name: `m${i}`, stream: false, idempotent: false })) },
      'methods: 1001 entries, at most 1000 allowed',
    ],
    [
      'metadata too large',
      { metadata: { blob: 'x'.repeat(RECORD_LIMITS.metadataBytes) } },
      `metadata: ${RECORD_LIMITS.metadataBytes + 11} bytes of JSON, at most ${RECORD_LIMITS.metadataBytes} allowed`,
    ],
    ['no service', { service: '' }, 'service: "" is not a non-empty string of at most 255 bytes'],
  ])('refuses %s, saying why', (_what, change, reason) => {
    expect(checkInstance({ ...good, ...change })).toBe(reason);
  });

  it('refuses load snapshots with negative or non-finite figures', () => {
    const load = { timestamp: 1, running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0.5, tokensPerSecond: 10, draining: false };
    expect(checkLoad(load)).toEqual(load);
    expect(checkLoad({ ...load, running: -1 })).toBe('running: -1 is not a finite number >= 0');
    expect(checkLoad({ ...load, tokensPerSecond: Infinity })).toBe('tokensPerSecond: Infinity is not a finite number >= 0');
    expect(checkLoad({ ...load, cacheHitRate: 2 })).toBe('cacheHitRate: 2 is not a number from 0 to 1');
  });
});

describe('the registry input guard', () => {
  it('drops and counts bad entries once each, and rate-limits its warnings', () => {
    const warnings: string[] = [];
    const guard = new RegistryInputGuard('etcd://h:1', (message) => warnings.push(message));
    expect(guard.read('/k/1', '{"a":', 100, () => 'never')).toBeUndefined();
    expect(guard.read('/k/1', '{"a":', 100, () => 'never')).toBeUndefined();
    expect(guard.dropped).toBe(1);
    expect(warnings).toEqual(['registry etcd://h:1: ignoring "/k/1": not JSON']);
    expect(guard.decode('/k/%E0%A4%A', '%E0%A4%A')).toBeUndefined();
    expect(guard.read('/k/2', 'x'.repeat(101), 100, (value) => value)).toBeUndefined();
    guard.contain('/k/3', () => {
      throw new Error('boom');
    });
    for (let i = 0; i < 10; i++) guard.drop(`/flood/${i}`, 'bad');
    expect(guard.dropped).toBe(14);
    expect(warnings).toHaveLength(WARNINGS_PER_WINDOW);
    expect(warnings[1]).toContain('its name is not valid URI encoding');
    expect(warnings[2]).toContain('101 bytes, at most 100 allowed');
    expect(warnings[3]).toContain('failed: boom');
  });
});
