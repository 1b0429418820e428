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
 * Block-chained hashes of `text`: one per full block of `blockChars` characters, each mixing
 * its block's content hash with the previous block's hash, so equal hashes mean equal
 * prefixes (as an inference engine keys its KV-cache blocks). At most `maxBlocks` are
 * computed.
 *
 * The inner loop is one xor and one multiply per two characters (32-bit FNV-1a over pairs of
 * UTF-16 units; a block is an even number of characters). Each block's hash
 * is mixed with the chain so far and cut to 30 bits, so it is a V8 small integer: a Map keyed
 * by small integers is several times faster than one keyed by heap numbers, and the index does
 * hundreds of lookups per routing decision. The price is an occasional false match (about one
 * per 2^30 pairs of blocks compared), which costs a cache miss, never a wrong answer.
 */
export function prefixBlockHashes(text: string, blockChars: number, maxBlocks: number): number[] {
  const blocks = Math.min(Math.floor(text.length / blockChars), maxBlocks);
  const hashes = new Array<number>(blocks);
  let chain = 0x9e3779b9;
  let position = 0;
  for (let block = 0; block < blocks; block++) {
    let h = FNV_OFFSET;
    const end = position + blockChars;
    // Two UTF-16 units per step (blockChars is even): half the multiplies of one per character.
    for (; position < end; position += 2) h = Math.imul(h ^ (text.charCodeAt(position) | (text.charCodeAt(position + 1) << 16)), FNV_PRIME);
    chain = fmix(Math.imul(chain ^ h, 0x5bd1e995) + block);
    hashes[block] = chain & 0x3fffffff;
  }
  return hashes;
}
