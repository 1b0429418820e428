/**
 * How many signals made by `AbortSignal.any` from `signal` it still keeps (Node's private set of
 * dependants; 0 where a Node version has no such set). Node 20 never empties it, so a count that
 * grows with the calls made shows a signal that leaks one entry per call.
 */
export function dependantSignals(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find((symbol) => symbol.description === 'kDependantSignals');
  const dependants = key === undefined ? undefined : (signal as unknown as Record<symbol, { size?: number } | undefined>)[key];
  return dependants?.size ?? 0;
}
