import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkInstance, checkLoad } from '../../../src/registry/record-check.js';

/*
 * What anyone with write access to the registry can put there reaches every consumer: a record
 * or load snapshot is any JSON at all. The checks must answer every such value with the record
 * or a reason — never throw — and what they accept must be accepted again unchanged (so a record
 * a consumer kept is the record it checked).
 */
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
  maxConcurrentCalls: 8,
  endpoints: [{ protocol: 'grpc', port: 20881 }],
  metadata: { model: 'llama', gpu: { kind: 'H100', memory: 80 } },
};
const goodLoad = {
  timestamp: 1,
  running: 2,
  waiting: 0,
  waitingUncachedTokens: 0,
  kvUsage: 0.5,
  tokensPerSecond: 100,
  draining: false,
  cachedPrefixes: [1, 2, 3],
};

const odd = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }),
  fc.constantFrom(-1, 0, -0, 1e308, 2 ** 53, 65_536, 0.5, '', '\u0000', '\ud800', '__proto__', [], {}, null, true, 'x'.repeat(70_000)),
);

/** A good record or snapshot with 1–3 fields replaced by odd values, added, or removed. */
function mutated(base: Record<string, unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = [...Object.keys(base), 'load', 'constructor', 'toString', 'extra'];
  return fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(odd, { nil: undefined })), { minLength: 1, maxLength: 3 }).map((changes) => {
    const copy: Record<string, unknown> = JSON.parse(JSON.stringify(base));
    for (const [key, value] of changes) {
      if (value === undefined) delete copy[key];
      else Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
    }
    // Through JSON, as a registry hands it over.
    return JSON.parse(JSON.stringify(copy)) as Record<string, unknown>;
  });
}

describe('registry records and load snapshots of any shape', () => {
  it('checkInstance answers every JSON value with a record or a reason, and accepts what it accepted unchanged', () => {
    fc.assert(
      fc.property(fc.oneof(odd, mutated(good)), (value) => {
        const checked = checkInstance(value);
        if (typeof checked === 'string') {
          expect(checked.length).toBeGreaterThan(0);
          return;
        }
        expect(checkInstance(JSON.parse(JSON.stringify(checked)))).toEqual(checked);
        expect(Number.isInteger(checked.port) && checked.port >= 1 && checked.port <= 65_535).toBe(true);
        expect(Object.getPrototypeOf(checked)).toBe(Object.prototype);
      }),
      { numRuns: 3000, seed: 2026 },
    );
  });

  it('checkLoad answers every JSON value with a snapshot or a reason, and accepts what it accepted unchanged', () => {
    fc.assert(
      fc.property(fc.oneof(odd, mutated(goodLoad)), (value) => {
        const checked = checkLoad(value);
        if (typeof checked === 'string') {
          expect(checked.length).toBeGreaterThan(0);
          return;
        }
        expect(checkLoad(JSON.parse(JSON.stringify(checked)))).toEqual(checked);
        for (const figure of [checked.running, checked.waiting, checked.kvUsage, checked.tokensPerSecond, checked.timestamp]) {
          expect(Number.isFinite(figure) && figure >= 0).toBe(true);
        }
      }),
      { numRuns: 3000, seed: 2026 },
    );
  });
});
