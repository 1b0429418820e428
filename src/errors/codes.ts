/**
 * The closed set of status codes, numbered exactly as gRPC numbers them so that the tcp and grpc
 * transports can map 1:1 and engineers who know gRPC read them without a table.
 */
export const RpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** One of the numeric values of {@link RpcCode}. */
export type RpcCode = (typeof RpcCode)[keyof typeof RpcCode];

const CONSTANTS: readonly string[] = Object.keys(RpcCode);
const NAMES: readonly string[] = CONSTANTS.map((key) => key.toLowerCase().replaceAll('_', ' '));

/** True when `value` is one of the numbers in {@link RpcCode}. */
export function isRpcCode(value: unknown): value is RpcCode {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < NAMES.length;
}

/** The human name of a code as used in message prefixes: `RpcCode.NOT_FOUND` -> `"not found"`. */
export function codeName(code: RpcCode): string {
  return NAMES[code] ?? `code ${String(code)}`;
}

/** The constant name of a code, as gRPC spells it: `RpcCode.NOT_FOUND` -> `"NOT_FOUND"`. */
export function codeConstant(code: RpcCode): string {
  return CONSTANTS[code] ?? `CODE_${String(code)}`;
}

/**
 * Codes that say the provider could not serve the call but another attempt may succeed.
 * Whether a retry is *safe* also depends on the method's idempotency, which the cluster layer
 * decides; this set only says whether retrying can help.
 */
const RETRYABLE: ReadonlySet<RpcCode> = new Set([RpcCode.UNAVAILABLE, RpcCode.RESOURCE_EXHAUSTED, RpcCode.DEADLINE_EXCEEDED, RpcCode.ABORTED]);

/** Whether a code is worth retrying at all (see {@link RETRYABLE}). */
export function isRetryableCode(code: RpcCode): boolean {
  return RETRYABLE.has(code);
}
