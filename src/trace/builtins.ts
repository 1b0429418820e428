import type { BuiltinExtension } from '../common/extension-registry.js';
import type { Filter } from '../filter/filter.js';
import { createTraceContextFilter, TYPE_NAME as TRACE_CONTEXT } from './filter.js';
import { createOpenTelemetryFilter, TYPE_NAME as OPENTELEMETRY } from './opentelemetry.js';

/** The built-in filters of this folder: W3C trace-context propagation and OpenTelemetry spans. */
export const TRACE_FILTERS: readonly BuiltinExtension<Filter>[] = [
  { name: TRACE_CONTEXT, factory: createTraceContextFilter },
  { name: OPENTELEMETRY, factory: createOpenTelemetryFilter },
];
