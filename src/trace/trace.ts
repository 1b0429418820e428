import { randomBytes } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/), the `traceparent` header as call
 * metadata: `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`. What OpenTelemetry,
 * gRPC interceptors and the LLM routers propagate, so a shuttle call joins their traces.
 */
export interface TraceParent {
  readonly traceId: string;
  /** The span of the caller this call belongs to. */
  readonly parentId: string;
  /** Bit 0 = sampled. */
  readonly flags: number;
}

/** The metadata key (lower case, as on HTTP/2). */
export const TRACEPARENT = 'traceparent';

const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Parses a `traceparent` value; undefined when it is not valid (the spec then says: start a new
 * trace rather than fail the call). Version 00 must have exactly four fields; later versions
 * may append fields, which are ignored; version ff is invalid.
 */
export function parseTraceParent(value: string | undefined): TraceParent | undefined {
  if (value === undefined) return undefined;
  const match = FORMAT.exec(value.trim());
  if (match === null) return undefined;
  const [, version, traceId, parentId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { traceId, parentId, flags: Number.parseInt(flags, 16) };
}

/** Formats a version-00 `traceparent`. */
export function formatTraceParent(trace: TraceParent): string {
  return `00-${trace.traceId}-${trace.parentId}-${(trace.flags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * The `traceparent` of an outgoing call: the same trace as `parent` (when there is one) with a
 * fresh span id for this call, or a new sampled trace.
 */
export function childTraceParent(parent: TraceParent | undefined): TraceParent {
  const parentId = randomBytes(8).toString('hex');
  if (parent !== undefined) return { traceId: parent.traceId, parentId, flags: parent.flags };
  return { traceId: randomBytes(16).toString('hex'), parentId, flags: 1 };
}
