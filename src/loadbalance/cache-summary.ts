/*
 * A worker's compact summary of its prefix cache, shared by the workers that publish it and
 * the balancers that read it, so several consumers in front of one fleet see the same cache
 * state instead of each guessing from its own traffic.
 *
 * A worker does not list every cached block (a 400k-token KV cache is 25k blocks): it lists the
 * chain hash of block n-1 only for "landmark" lengths n — 1 to 8, then every length whose
 * binary form has at most three leading significant bits (10, 12, 14, 16, 20, 24, 28, 32, 40,
 * …). Chain hashes name whole prefixes (hash.ts), so a landmark present means the whole prefix
 * of that length is cached, and a prompt's cached length is known to within 25 % from at most
 * about 4 x log2(blocks) entries per cached prefix. A summary travels in the load snapshot
 * (`LoadSnapshot.cachedPrefixes`, at most `MAX_CACHE_SUMMARY` entries, most recently used first).
 */

/** Whether a prefix of `blocks` blocks is a landmark length. */
export function isLandmark(blocks: number): boolean {
  if (blocks <= 8) return blocks >= 1;
  const shift = 31 - Math.clz32(blocks) - 2;
  return (blocks >>> shift) << shift === blocks;
}

/**
 * The longest landmark prefix of `hashes` (a prompt's chain hashes) that `held` contains, in
 * blocks; 0 when none, or when none is longer than `above` (a length already known to be held,
 * so shorter landmarks need not be looked up). Looks at landmark lengths from the longest down.
 */
export function summaryMatch(hashes: readonly number[], held: ReadonlySet<number>, above = 0): number {
  for (let blocks = hashes.length; blocks > above; blocks--) {
    if (isLandmark(blocks) && held.has(hashes[blocks - 1]!)) return blocks;
  }
  return 0;
}
