/*
 * Non-cryptographic string hashing for routing: FNV-1a and a murmur3-style finaliser, run
 * together in one pass to give 53-bit values (exact as JS numbers), so the prefix index's
 * false matches stay negligible at hundreds of thousands of blocks.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** A 53-bit hash of `text[from, to)`, continuing from `seed` (0 to start a chain). */
export function hashRange(text: string, from: number, to: number, seed: number): number {
  let a = (FNV_OFFSET ^ (seed >>> 0)) >>> 0;
  let b = (Math.floor(seed / 0x100000000) ^ 0x9e3779b9) >>> 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a = fmix(a);
  b = fmix(b ^ a);
  return (b & 0x1fffff) * 0x100000000 + (a >>> 0);
}

/** A 32-bit hash of a whole string (for the consistent-hash ring). */
export function hash32(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return fmix(h) >>> 0;
}

function fmix(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Block-chained hashes of `text`: one per full block of `blockChars` characters, each hashing
 * its block and the previous hash, so equal hashes mean equal prefixes (as KV-cache blocks of
 * an inference engine are keyed). At most `maxBlocks` are computed.
 */
export function prefixBlockHashes(text: string, blockChars: number, maxBlocks: number): number[] {
  const blocks = Math.min(Math.floor(text.length / blockChars), maxBlocks);
  const hashes = new Array<number>(blocks);
  let previous = 0;
  for (let i = 0; i < blocks; i++) {
    previous = hashRange(text, i * blockChars, (i + 1) * blockChars, previous);
    hashes[i] = previous;
  }
  return hashes;
}
