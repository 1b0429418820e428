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

/** The murmur3 finaliser: a bijection on 32 bits in which every input bit flips each output bit half the time. */
export function fmix(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/*
 * Block hashing reads the prompt through this buffer, a run of whole blocks at a time: one
 * native copy (Buffer.write) and then typed-array loads, four characters to a load when the
 * text is Latin-1 (as English prompts are) and two otherwise, where charCodeAt() costs a call
 * per character. The words are read in the host's byte order, so a big-endian host takes the
 * charCodeAt path, which computes the same hashes.
 */
const SCRATCH_BYTES = 16_384;
const words = new Int32Array(SCRATCH_BYTES / 4);
const scratch = Buffer.from(words.buffer);
/** A Latin-1 block read as UTF-16, repacked four characters to a word. */
const packed = new Int32Array(SCRATCH_BYTES / 8);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** V8 answers this at once for a string stored one byte per character (it cannot match). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is every Latin-1 code unit, controls included
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;
/** The second lane's FNV offset: any constant other than the first's. */
const LANE_OFFSET = 0x2f1a5b3c;

/**
 * Block-chained hashes of `text`: one per full block of `blockChars` characters (an even
 * number), each mixing its block's content hash into the chain of the blocks before it, so
 * equal hashes mean equal prefixes (as an inference engine keys its KV-cache blocks). At most
 * `maxBlocks` are computed.
 *
 * A block's content hash is FNV-1a over 32-bit words in two interleaved lanes (even and odd
 * words), so two multiplies are in flight at once rather than each waiting for the last: the
 * words are the block's bytes four to a word when every character is at most U+00FF and
 * `blockChars` is a multiple of 4, else its UTF-16 units two to a word. It depends on the block
 * alone, so a prefix hashes the same in any prompt. The chain step is one multiply (a bijection,
 * so different prefixes never merge); the avalanche finaliser runs on each output, off the
 * chain's critical path. On the bench machine 16 KiB of Latin-1 hashes in about 8 µs, where
 * charCodeAt and one chain of multiplies take about 50.
 *
 * Outputs are cut to 30 bits, V8 small integers, which the index compares and keys maps by
 * faster than heap numbers. The price is an occasional false match (about one per 2^30 pairs
 * of blocks compared), which costs a cache miss, never a wrong answer.
 */
export function prefixBlockHashes(text: string, blockChars: number, maxBlocks: number): number[] {
  const blocks = Math.min(Math.floor(text.length / blockChars), maxBlocks);
  const hashes = new Array<number>(blocks);
  const latin1 = blockChars % 4 === 0 && !BEYOND_LATIN1.test(text);
  const charBytes = latin1 ? 1 : 2;
  const blockWords = (blockChars * charBytes) / 4;
  const perChunk = LITTLE_ENDIAN ? Math.floor(SCRATCH_BYTES / (blockChars * charBytes)) : 0;
  let chain = 0x9e3779b9 | 0;
  for (let block = 0; block < blocks; ) {
    if (perChunk === 0) {
      chain = link(chain, blockByCharCodes(text, block * blockChars, blockChars), block);
      hashes[block++] = fmix(chain) & 0x3fffffff;
      continue;
    }
    const count = Math.min(perChunk, blocks - block);
    const from = block * blockChars;
    // write() copies from the string's start, so later runs are slices (views, not copies).
    scratch.write(from === 0 ? text : text.slice(from, from + count * blockChars), 0, count * blockChars * charBytes, latin1 ? 'latin1' : 'utf16le');
    for (let word = 0, end = count * blockWords; word < end; word += blockWords) {
      const h = latin1 ? fnvWords(words, word, word + blockWords) : unitsBlock(word, word + blockWords, blockChars);
      chain = link(chain, h, block);
      hashes[block++] = fmix(chain) & 0x3fffffff;
    }
  }
  return hashes;
}

function link(chain: number, block: number, index: number): number {
  return (Math.imul(chain ^ block, 0x5bd1e995) + index) | 0;
}

/** Two-lane FNV-1a over `source[from, to)`. */
function fnvWords(source: Int32Array, from: number, to: number): number {
  let even = FNV_OFFSET;
  let odd = LANE_OFFSET;
  let word = from;
  for (; word + 1 < to; word += 2) {
    even = Math.imul(even ^ source[word]!, FNV_PRIME);
    odd = Math.imul(odd ^ source[word + 1]!, FNV_PRIME);
  }
  if (word < to) even = Math.imul(even ^ source[word]!, FNV_PRIME);
  return even ^ Math.imul(odd, 0x5bd1e995);
}

/** The content hash of a block held in `words[from, to)` as UTF-16 units, two to a word. */
function unitsBlock(from: number, to: number, blockChars: number): number {
  if (blockChars % 4 !== 0) return fnvWords(words, from, to);
  let high = 0;
  for (let word = from; word < to; word++) high |= words[word]! & 0xff00ff00;
  if (high !== 0) return fnvWords(words, from, to);
  // Latin-1 only: the bytes four to a word, as the Latin-1 path reads them.
  let count = 0;
  for (let word = from; word < to; word += 2) {
    const low = words[word]!;
    const next = words[word + 1]!;
    packed[count++] = (low & 0xff) | ((low >>> 8) & 0xff00) | ((next & 0xff) << 16) | ((next & 0xff0000) << 8);
  }
  return fnvWords(packed, 0, count);
}

/** The content hash of `text[from, from + blockChars)` by charCodeAt (any byte order). */
function blockByCharCodes(text: string, from: number, blockChars: number): number {
  const end = from + blockChars;
  let latin1 = blockChars % 4 === 0;
  for (let i = from; latin1 && i < end; i++) latin1 = text.charCodeAt(i) <= 0xff;
  const step = latin1 ? 4 : 2;
  let even = FNV_OFFSET;
  let odd = LANE_OFFSET;
  let isOdd = false;
  for (let i = from; i < end; i += step) {
    const word = latin1
      ? text.charCodeAt(i) | (text.charCodeAt(i + 1) << 8) | (text.charCodeAt(i + 2) << 16) | (text.charCodeAt(i + 3) << 24)
      : text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    if (isOdd) odd = Math.imul(odd ^ word, FNV_PRIME);
    else even = Math.imul(even ^ word, FNV_PRIME);
    isOdd = !isOdd;
  }
  return even ^ Math.imul(odd, 0x5bd1e995);
}
