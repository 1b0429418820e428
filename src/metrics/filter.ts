import { checkKnownKeys, invalidOption } from '../common/validate.js';
import { RpcCode, RpcError, codeConstant } from '../errors/errors.js';
import type { Filter } from '../filter/filter.js';
import type { ExtensionFactory } from '../common/extension-registry.js';
import { ShuttleMetrics } from './metrics.js';

/** The name the metrics filter is registered under. */
export const TYPE_NAME = 'metrics';

/**
 * A filter recording every call into a {@link ShuttleMetrics} (option `metrics`; a new one when
 * omitted). On either side; streams are counted chunk by chunk as they pass, and their outcome
 * and latency are those of opening them (an error mid-stream is not in `shuttle_calls_total`).
 */
export const createMetricsFilter: ExtensionFactory<Filter> = (options) => {
  checkKnownKeys('metrics filter options', options, ['metrics']);
  const metrics = options['metrics'];
  if (metrics !== undefined && !(metrics instanceof ShuttleMetrics)) throw invalidOption('metrics filter option metrics', metrics, 'a ShuttleMetrics');
  const sink = metrics ?? new ShuttleMetrics();
  return {
    name: TYPE_NAME,
    order: -3000,
    sides: ['consumer', 'provider'],
    invoke(invocation, next) {
      const labels = { side: invocation.side, service: invocation.service, method: sink.methodLabel(invocation.service, invocation.method) };
      const started = performance.now();
      sink.inFlight.inc(labels);
      const outcome = (code: string): void => {
        sink.inFlight.dec(labels);
        sink.calls.inc({ ...labels, code });
        sink.latency.observe(labels, (performance.now() - started) / 1000);
      };
      return next(invocation).then(
        (value) => {
          outcome(codeConstant(RpcCode.OK));
          if (invocation.stream && value !== null && typeof value === 'object' && Symbol.asyncIterator in value)
            return countChunks(value as AsyncIterable<unknown>, sink, labels, started);
          return value;
        },
        (error: unknown) => {
          // gRPC's spelling of the code (NOT_FOUND), which is what dashboards built for gRPC expect.
          outcome(codeConstant(RpcError.from(error).code));
          throw error;
        },
      );
    },
  };
};

/** Wraps a stream so its chunks and time to first chunk are counted as they pass. */
function countChunks(stream: AsyncIterable<unknown>, sink: ShuttleMetrics, labels: Record<string, string>, started: number): AsyncIterable<unknown> {
  // Inherit from the stream so what else it offers (the consumer's `trailer`) stays reachable.
  const wrapped = Object.create(stream) as AsyncIterable<unknown>;
  (wrapped as { [Symbol.asyncIterator]: () => AsyncIterator<unknown> })[Symbol.asyncIterator] = () => {
    const iterator = stream[Symbol.asyncIterator]();
    let first = true;
    return {
      next: async (...args: [] | [unknown]) => {
        const step = await iterator.next(...args);
        if (step.done !== true) {
          if (first) {
            first = false;
            sink.ttft.observe(labels, (performance.now() - started) / 1000);
          }
          sink.chunks.inc(labels);
        }
        return step;
      },
      ...(iterator.return === undefined ? {} : { return: (value?: unknown) => iterator.return!(value) }),
    };
  };
  return wrapped;
}
