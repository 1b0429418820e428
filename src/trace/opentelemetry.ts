import { createRequire } from 'node:module';
import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';
import { checkKnownKeys } from '../common/validate.js';
import { RpcCode, RpcError, codeConstant } from '../errors/errors.js';
import type { Filter } from '../filter/filter.js';
import { onStreamEnd } from '../filter/stream-end.js';
import type { Metadata } from '../call/invocation.js';
import type { ExtensionFactory } from '../common/extension-registry.js';

/** The name this filter is registered under. */
export const TYPE_NAME = 'opentelemetry';

const setter: TextMapSetter<Metadata> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};
const getter: TextMapGetter<Readonly<Metadata>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => (Object.hasOwn(carrier, key) ? carrier[key] : undefined),
};

/**
 * The application's `@opentelemetry/api`, loaded when the filter is made. It is a peer
 * dependency, not one of ours: the API keeps its registered SDK in a process global that a
 * copy of another minor version ignores (a nested copy newer than the application's would
 * make every span a silent no-op), so the one copy must be the application's. Loaded only
 * here, an application that does not trace need not install it.
 */
function loadApi(): typeof import('@opentelemetry/api') {
  try {
    return createRequire(import.meta.url)('@opentelemetry/api') as typeof import('@opentelemetry/api');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !(error as Error).message.includes("'@opentelemetry/api'")) throw error;
    throw new TypeError(
      "the opentelemetry filter needs the @opentelemetry/api package, which is not installed: run 'npm install @opentelemetry/api' in the application (the one its OpenTelemetry SDK uses)",
    );
  }
}

/**
 * OpenTelemetry spans for calls (opt-in on either side: add `'opentelemetry'` to `filters`).
 * Only `@opentelemetry/api` is used, the application's own copy (a peer dependency; making
 * the filter without it installed throws, saying to install it): with no SDK registered by
 * the application every span is a no-op. With one, a consumer call is a CLIENT span
 * `service/method` whose context goes out in the call metadata through the application's
 * propagator (W3C `traceparent` by default); the provider continues it as a SERVER span,
 * active while the handler runs, so the handler's own spans (`trace.getActiveSpan()`) nest
 * under it. Attributes follow the RPC semantic conventions: `rpc.system` (`shuttle`),
 * `rpc.service`, `rpc.method`, and `rpc.grpc.status_code` (shuttle's codes are gRPC's); a
 * failure sets the span status to ERROR. A stream's span lasts until the stream ends, with
 * its chunk count.
 */
export const createOpenTelemetryFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('opentelemetry filter options', options, []);
  const { SpanKind, SpanStatusCode, context, propagation, trace } = loadApi();
  return {
    name: TYPE_NAME,
    // Outside trace-context, so that the traceparent of this span is the one that is sent.
    order: -1700,
    sides: ['consumer', 'provider'],
    invoke(invocation, next) {
      const consumer = invocation.side === 'consumer';
      const parent = consumer ? context.active() : propagation.extract(context.active(), invocation.metadata, getter);
      const span = trace.getTracer('shuttle-rpc').startSpan(
        `${invocation.service}/${invocation.method}`,
        {
          kind: consumer ? SpanKind.CLIENT : SpanKind.SERVER,
          attributes: {
            'rpc.system': 'shuttle',
            'rpc.service': invocation.service,
            'rpc.method': invocation.method,
            ...(invocation.peer === undefined ? {} : { 'network.peer.address': invocation.peer.address, 'network.peer.port': invocation.peer.port }),
          },
        },
        parent,
      );
      const active = trace.setSpan(parent, span);
      let forwarded = invocation;
      if (consumer) {
        const metadata: Metadata = { ...invocation.metadata };
        propagation.inject(active, metadata, setter);
        forwarded = { ...invocation, metadata };
      }
      const fail = (error: unknown): void => {
        const failure = RpcError.from(error);
        span.setAttribute('rpc.grpc.status_code', failure.code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${codeConstant(failure.code)}: ${failure.rawMessage}` });
        span.end();
      };
      return context
        .with(active, () => next(forwarded))
        .then(
          (value) => {
            if (!invocation.stream) {
              span.setAttribute('rpc.grpc.status_code', RpcCode.OK);
              span.end();
              return value;
            }
            return onStreamEnd(value as AsyncIterable<unknown>, (end) => {
              span.setAttribute('shuttle.stream.chunks', end.chunks);
              if (end.error !== undefined) return fail(end.error);
              if (end.early) span.setAttribute('shuttle.stream.cancelled', true);
              span.setAttribute('rpc.grpc.status_code', RpcCode.OK);
              span.end();
            });
          },
          (error: unknown) => {
            fail(error);
            throw error;
          },
        );
    },
  };
};
