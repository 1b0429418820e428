/**
 * Stream chunks every provider stream of this process may produce in one event-loop turn; past
 * it, each waits for a later turn. A handler that yields without awaiting anything (a generator
 * over data already in memory, a PushStream fed in bulk) otherwise runs in microtasks until its
 * flow-control credit runs out — thousands of chunks, milliseconds — and nothing else the
 * process should do meanwhile happens: reading a CANCEL, answering another connection.
 * At 1–2 µs a chunk, 512 keep a turn near a millisecond, about one 16 KiB write slice of
 * token-sized chunks (frame-writer.ts); a turn that produces fewer costs one setImmediate.
 * bench:stream, 16 streams of 1,000 chunks: time to first chunk p50 about 1 ms against 5–12 ms
 * without the budget, chunks/s within the runs' spread (docs/BENCHMARKS.md).
 */
export const CHUNKS_PER_TURN = 512;

/** Chunks granted in this turn. */
let chunks = 0;
/** Whether this turn's end is scheduled (it resets the count and lets waiters go). */
let scheduled = false;
/**
 * Streams waiting for a chunk of a later turn, first come first served: each turn lets go as
 * many as it has chunks, so ten thousand waiting streams cost one promise each, not one per
 * turn they wait, and each gets its turn in order.
 */
let waiting: Array<() => void> = [];

function turnEnded(): void {
  scheduled = false;
  const granted = Math.min(waiting.length, CHUNKS_PER_TURN);
  // Each waiter let go makes the chunk it waited for, in the turn that begins now.
  chunks = granted;
  if (granted === 0) return;
  const ready = granted === waiting.length ? waiting : waiting.slice(0, granted);
  waiting = granted === waiting.length ? [] : waiting.slice(granted);
  schedule();
  for (const resolve of ready) resolve();
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(turnEnded);
}

/**
 * Counts one chunk against this turn's budget: undefined while there is budget left (and no
 * stream waiting before this one), else a promise of a later turn, which grants the chunk.
 */
export function chunkTurn(): Promise<void> | undefined {
  schedule();
  if (chunks < CHUNKS_PER_TURN && waiting.length === 0) {
    chunks++;
    return undefined;
  }
  return new Promise<void>((resolve) => waiting.push(resolve));
}
