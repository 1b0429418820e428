import { checkKnownKeys } from '../common/validate.js';
import type { Filter } from '../filter/filter.js';
import { currentCallScope } from '../call/call-scope.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { TRACEPARENT, childTraceParent, formatTraceParent, parseTraceParent } from './trace.js';

/** The name this filter is registered under. */
export const TYPE_NAME = 'trace-context';

/**
 * Propagates W3C trace context (consumer side; opt-in: add `'trace-context'` to a client's
 * `filters`). A call made while serving a call continues the incoming trace; a call with a
 * valid `traceparent` in its own metadata keeps it; any other call starts a new trace. The
 * provider's handler reads it as `context.metadata.traceparent`.
 */
export const createTraceContextFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('trace-context filter options', options, []);
  return {
    name: TYPE_NAME,
    // Inside the metrics and access-log filters, outside everything that sends.
    order: -1500,
    sides: ['consumer'],
    invoke(invocation, next) {
      if (parseTraceParent(invocation.metadata[TRACEPARENT]) !== undefined) return next(invocation);
      const incoming = parseTraceParent(currentCallScope()?.meta?.[TRACEPARENT]);
      const traceparent = formatTraceParent(childTraceParent(incoming));
      return next({ ...invocation, metadata: { ...invocation.metadata, [TRACEPARENT]: traceparent } });
    },
  };
};
