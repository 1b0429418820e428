import { RpcCode, RpcError } from '../errors/errors.js';

/**
 * What happened to a call, as a caller must know it to decide what to do next:
 * - `ok`: it succeeded;
 * - `cancelled`: the caller cancelled it (abort signal, or a stream left early);
 * - `maybe-executed`: the connection was lost, or the call's deadline passed, while the request
 *   was in flight — the handler may have run (or still be running); a non-idempotent call must
 *   not simply be sent again;
 * - `failed`: it failed with `error.code`, and the handler did not complete it.
 */
export type CallOutcome = 'ok' | 'failed' | 'cancelled' | 'maybe-executed';

/** The outcome of a call that resolved (`callOutcome()`) or rejected with `error`. */
export function callOutcome(error?: unknown): CallOutcome {
  if (error === undefined) return 'ok';
  const failure = RpcError.from(error);
  if (failure.code === RpcCode.CANCELLED && failure.details?.['callerLeft'] !== true) return 'cancelled';
  if (failure.details?.['maybeExecuted'] === true) return 'maybe-executed';
  return 'failed';
}
