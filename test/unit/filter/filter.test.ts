import { describe, expect, it } from 'vitest';
import { createContextKey, createContextValues } from '../../../src/call/context-values.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { buildFilters, composeFilters, type Filter, type FilterInvocation } from '../../../src/filter/filter.js';
import { ADMITTED, TOKEN_META } from '../../../src/filter/token.js';
import { RetryAfterEstimator } from '../../../src/filter/retry-after.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';

const invocation = (side: 'consumer' | 'provider', metadata: Record<string, string> = {}): FilterInvocation => ({
  side,
  service: 's',
  version: '',
  method: 'm',
  request: 1,
  stream: false,
  metadata,
  deadline: undefined,
  peer: undefined,
  values: createContextValues(),
});

function recorder(name: string, order: number, trace: string[]): Filter {
  return {
    name,
    order,
    sides: ['consumer', 'provider'],
    invoke: async (call, next) => {
      trace.push(`>${name}`);
      const result = await next(call);
      trace.push(`<${name}`);
      return result;
    },
  };
}

describe('filter chains', () => {
  it('runs filters in ascending order, outermost first, stable for equal orders', async () => {
    const ext = defaultExtensions();
    const trace: string[] = [];
    const filters = buildFilters('consumer', [recorder('b', 10, trace), recorder('a', -10, trace), recorder('c', 10, trace)], ext.filter);
    expect(filters.map((f) => f.name)).toEqual(['a', 'b', 'c']);
    const chain = composeFilters(filters, async (call) => {
      trace.push('call');
      return call.request;
    });
    expect(await chain(invocation('consumer'))).toBe(1);
    expect(trace).toEqual(['>a', '>b', '>c', 'call', '<c', '<b', '<a']);
  });

  it('leaves unconfigured default filters out, adds configured ones, and removes defaults with -name', () => {
    const ext = defaultExtensions();
    expect(buildFilters('provider', undefined, ext.filter)).toEqual([]);
    expect(buildFilters('provider', undefined, ext.filter, { token: { token: 't' } }).map((f) => f.name)).toEqual(['token']);
    expect(buildFilters('provider', ['-token'], ext.filter, { token: { token: 't' } })).toEqual([]);
    expect(buildFilters('provider', [{ type: 'concurrency-limit', options: { max: 2 } }, 'access-log'], ext.filter).map((f) => f.name)).toEqual([
      'access-log',
      'concurrency-limit',
    ]);
  });

  it('names the problem with a bad filter list', () => {
    const ext = defaultExtensions();
    expect(() => buildFilters('consumer', ['-access-log'], ext.filter)).toThrow(
      /invalid consumer filters: "-access-log" \(allowed: "-name" for a default consumer filter: -token\)/,
    );
    expect(() => buildFilters('consumer', ['concurrency-limit'], ext.filter)).toThrow(
      /a filter that runs on the consumer side \(concurrency-limit runs on: provider\)/,
    );
    expect(() => buildFilters('consumer', ['nope'], ext.filter)).toThrow(
      /invalid consumer filters\[0\]: "nope" \(allowed: one of the registered filter extensions: token, concurrency-limit, access-log, metrics, trace-context, opentelemetry\)/,
    );
    expect(() => buildFilters('provider', [{ type: 'concurrency-limit', options: { max: -1 } }], ext.filter)).toThrow(
      /invalid concurrency-limit option max: -1/,
    );
  });
});

describe('token filter', () => {
  const ext = defaultExtensions();
  it('attaches the token on the consumer and checks it on the provider without echoing it', async () => {
    const consumer = ext.filter.create({ type: 'token', options: { token: 's3cret' } });
    const provider = ext.filter.create({ type: 'token', options: { token: 's3cret' } });
    let sent: FilterInvocation | undefined;
    await consumer.invoke(invocation('consumer'), async (call) => (sent = call));
    expect(sent?.metadata[TOKEN_META]).toBe('s3cret');
    expect(await provider.invoke(invocation('provider', { [TOKEN_META]: 's3cret' }), async () => 'ran')).toBe('ran');
    for (const offered of [{}, { [TOKEN_META]: 'wrong' }, { [TOKEN_META]: 's3cret-but-longer' }] as Array<Record<string, string>>) {
      const error = (await provider.invoke(invocation('provider', offered), async () => 'ran').catch((e: unknown) => e)) as RpcError;
      expect(error.code).toBe(RpcCode.UNAUTHENTICATED);
      expect(error.message).not.toMatch(/s3cret/);
    }
  });

  it('does not check again a provider call the dispatcher admitted before decoding (a context value, not a property anyone can set)', async () => {
    const provider = ext.filter.create({ type: 'token', options: { token: 's3cret' } });
    const admitted = invocation('provider');
    admitted.values.set(ADMITTED, true);
    expect(await provider.invoke(admitted, async () => 'ran')).toBe('ran');
    // A look-alike property is not the key: the token is checked.
    const forged = { ...invocation('provider'), admitted: true, [Symbol.for('shuttle-rpc:admitted')]: true } as FilterInvocation;
    const error = (await provider.invoke(forged, async () => 'ran').catch((e: unknown) => e)) as RpcError;
    expect(error.code).toBe(RpcCode.UNAUTHENTICATED);
  });
});

describe('context values', () => {
  it('carry typed values by key through copies of a call; an unset key reads its default', () => {
    const count = createContextKey(0, 'count');
    const label = createContextKey<string | undefined>(undefined, 'label');
    const call = invocation('consumer');
    expect(call.values.get(count)).toBe(0);
    expect(call.values.has(count)).toBe(false);
    const copy = { ...call, metadata: { a: '1' } };
    copy.values.set(count, 3).set(label, 'x');
    expect(call.values.get(count)).toBe(3);
    expect(call.values.get(label)).toBe('x');
    call.values.delete(label);
    expect(copy.values.has(label)).toBe(false);
    expect(createContextValues().get(count)).toBe(0);
  });
});

describe('concurrency-limit filter', () => {
  it('refuses calls over the limit with RESOURCE_EXHAUSTED and a retry hint, and frees slots', async () => {
    const limit = defaultExtensions().filter.create({ type: 'concurrency-limit', options: { max: 2 } });
    const gates: Array<() => void> = [];
    const slow = () => new Promise((resolve) => gates.push(() => resolve('done')));
    const first = limit.invoke(invocation('provider'), slow);
    const second = limit.invoke(invocation('provider'), slow);
    const third = (await limit.invoke(invocation('provider'), slow).catch((e: unknown) => e)) as RpcError;
    expect(third.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    // Nothing completed yet: 100 ms assumed per call over 2 slots, jittered by ±50 %.
    expect(third.retryAfterMs).toBeGreaterThanOrEqual(25);
    expect(third.retryAfterMs).toBeLessThanOrEqual(75);
    expect(third.message).toMatch(/limit of 2 concurrent calls/);
    gates.forEach((open) => open());
    await Promise.all([first, second]);
    await expect(limit.invoke(invocation('provider'), async () => 'again')).resolves.toBe('again');
  });
});

describe('retry-after estimator', () => {
  const bounds = { initialServiceMs: 100, minMs: 5, maxMs: 10_000 };

  it('hints the time a slot frees, later for callers further back in line', () => {
    const estimator = new RetryAfterEstimator(bounds, () => 0.5); // no jitter
    expect(estimator.refused(4)).toBe(25);
    expect(estimator.refused(4)).toBe(50);
    estimator.completed(100);
    expect(estimator.refused(4)).toBe(25);
  });

  it('follows the service rate of completed calls', () => {
    const estimator = new RetryAfterEstimator(bounds, () => 0.5);
    for (let i = 0; i < 200; i++) estimator.completed(400);
    expect(estimator.serviceMs).toBeCloseTo(400, 0);
    expect(estimator.refused(4)).toBe(100);
    for (let i = 0; i < 200; i++) estimator.completed(20);
    expect(estimator.refused(4)).toBe(5);
  });

  it('stays within its bounds and spreads callers refused together', () => {
    const slow = new RetryAfterEstimator(bounds, () => 0.5);
    for (let i = 0; i < 500; i++) slow.completed(1_000_000);
    expect(slow.refused(1)).toBe(10_000);
    expect(new RetryAfterEstimator({ ...bounds, initialServiceMs: 0 }, () => 0.5).refused(8)).toBe(5);
    expect(new RetryAfterEstimator(bounds, () => 0).refused(1)).toBe(50);
    expect(new RetryAfterEstimator(bounds, () => 0.999).refused(1)).toBe(150);
  });
});

describe('access-log filter', () => {
  it('writes one line per call with the outcome', async () => {
    const lines: string[] = [];
    const log = defaultExtensions().filter.create({ type: 'access-log', options: { log: (line: string) => lines.push(line) } });
    await log.invoke(invocation('consumer'), async () => 1);
    await log.invoke(invocation('consumer'), async () => Promise.reject(new RpcError(RpcCode.NOT_FOUND, 'x'))).catch(() => {});
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/consumer s\.m ok \d+\.\dms$/);
    expect(lines[1]).toMatch(/consumer s\.m not_found/);
  });
});
