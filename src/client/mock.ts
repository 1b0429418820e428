import { invalidOption, checkKnownKeys, optionKeys } from '../common/validate.js';
import { isProviderFailure } from '../cluster/provider-health.js';
import { RpcCode, RpcError } from '../errors/errors.js';
import type { Invocation } from '../call/invocation.js';

/**
 * A reference's fallback (Dubbo's `mock`):
 * - `mode: 'fail'` (default): when a call fails with a provider-side code (UNAVAILABLE,
 *   DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, DATA_LOSS), resolve with the
 *   fallback instead; caller errors (bad input, a cancel) still fail.
 * - `mode: 'force'`: never call; always resolve with the fallback — for tests, and to take a
 *   broken dependency out of the path by configuration.
 * `value` is returned as is; `fallback(method, request, error)` is called (error undefined in
 * force mode). `methods` limits it to some methods (all by default). Unary calls only.
 */
export interface MockOptions {
  mode?: 'fail' | 'force';
  methods?: readonly string[];
  value?: unknown;
  fallback?: (method: string, request: unknown, error: RpcError | undefined) => unknown;
}

const MOCK_KEYS = optionKeys<MockOptions>()(['mode', 'methods', 'value', 'fallback']);

/** A checked {@link MockOptions}. */
export interface ResolvedMock {
  readonly mode: 'fail' | 'force';
  readonly methods: ReadonlySet<string> | undefined;
  readonly produce: (method: string, request: unknown, error: RpcError | undefined) => unknown;
}

export function resolveMock(option: MockOptions | undefined, key: string): ResolvedMock | undefined {
  if (option === undefined) return undefined;
  if (option === null || typeof option !== 'object') throw invalidOption(key, option, '{ mode?, methods?, value? | fallback? }');
  checkKnownKeys(key, option, MOCK_KEYS);
  const mode = option.mode ?? 'fail';
  if (mode !== 'fail' && mode !== 'force') throw invalidOption(`${key}.mode`, mode, "'fail' or 'force'");
  if (option.methods !== undefined && (!Array.isArray(option.methods) || !option.methods.every((method) => typeof method === 'string'))) {
    throw invalidOption(`${key}.methods`, option.methods, 'an array of method names');
  }
  if (option.fallback !== undefined && typeof option.fallback !== 'function') throw invalidOption(`${key}.fallback`, option.fallback, 'a function');
  if (option.fallback === undefined && !('value' in option)) throw invalidOption(key, option, 'a value or a fallback function');
  const fallback = option.fallback;
  const value = option.value;
  return {
    mode,
    methods: option.methods === undefined ? undefined : new Set(option.methods),
    produce: fallback === undefined ? () => value : fallback,
  };
}

/** Runs `call` with the mock applied (see {@link MockOptions}). */
export function applyMock(mock: ResolvedMock, invocation: Invocation, call: () => Promise<unknown>): Promise<unknown> {
  if (mock.methods !== undefined && !mock.methods.has(invocation.method)) return call();
  if (mock.mode === 'force') {
    try {
      return Promise.resolve(mock.produce(invocation.method, invocation.request, undefined));
    } catch (error) {
      return Promise.reject(RpcError.from(error));
    }
  }
  return call().catch((error: unknown) => {
    const failure = RpcError.from(error);
    if (!isProviderFailure(failure) && failure.code !== RpcCode.RESOURCE_EXHAUSTED) throw failure;
    return mock.produce(invocation.method, invocation.request, failure);
  });
}
