import type { BuiltinExtension } from '../common/extension-registry.js';
import { createAccessLogFilter, TYPE_NAME as ACCESS_LOG } from './access-log.js';
import { createConcurrencyLimitFilter, TYPE_NAME as CONCURRENCY_LIMIT } from './concurrency-limit.js';
import type { Filter } from './filter.js';
import { createTokenFilter, TYPE_NAME as TOKEN } from './token.js';

/**
 * The built-in filters of this folder. The metrics and tracing filters are built-ins too, listed
 * by their own folders (`metrics/builtins.ts`, `trace/builtins.ts`), which depend on this one.
 */
export const BUILTIN_FILTERS: readonly BuiltinExtension<Filter>[] = [
  { name: TOKEN, factory: createTokenFilter },
  { name: CONCURRENCY_LIMIT, factory: createConcurrencyLimitFilter },
  { name: ACCESS_LOG, factory: createAccessLogFilter },
];
