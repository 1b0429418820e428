import type { BuiltinExtension } from '../common/extension-registry.js';
import type { Filter } from '../filter/filter.js';
import { createMetricsFilter, TYPE_NAME as METRICS } from './filter.js';

/** The built-in filters of this folder: the Prometheus metrics filter. */
export const METRICS_FILTERS: readonly BuiltinExtension<Filter>[] = [{ name: METRICS, factory: createMetricsFilter }];
