import { describe, expect, it } from 'vitest';
import { prefixBlockHashes } from '../../../src/loadbalance/hash.js';

/** The block hashes as their definition states them, one charCodeAt at a time. */
function reference(text: string, blockChars: number, maxBlocks: number): number[] {
  const fmix = (value: number): number => {
    let h = value;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  };
  const hashes: number[] = [];
  let chain = 0x9e3779b9 | 0;
  for (let block = 0; block < Math.min(Math.floor(text.length / blockChars), maxBlocks); block++) {
    const units = Array.from({ length: blockChars }, (_, i) => text.charCodeAt(block * blockChars + i));
    const latin1 = blockChars % 4 === 0 && units.every((unit) => unit <= 0xff);
    // FNV-1a in two lanes: even words into one, odd words into the other.
    const lanes = [0x811c9dc5, 0x2f1a5b3c];
    for (let i = 0, word = 0; i < blockChars; i += latin1 ? 4 : 2, word++) {
      const value = latin1 ? units[i]! | (units[i + 1]! << 8) | (units[i + 2]! << 16) | (units[i + 3]! << 24) : units[i]! | (units[i + 1]! << 16);
      lanes[word % 2] = Math.imul(lanes[word % 2]! ^ value, 0x01000193);
    }
    const h = lanes[0]! ^ Math.imul(lanes[1]!, 0x5bd1e995);
    chain = (Math.imul(chain ^ h, 0x5bd1e995) + block) | 0;
    hashes.push(fmix(chain) & 0x3fffffff);
  }
  return hashes;
}

describe('prefixBlockHashes', () => {
  let seed = 11;
  const random = (): number => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
  // ASCII, Latin-1, CJK, and lone surrogates (UTF-16 units, not code points, are hashed).
  const alphabets = ['abc def.', 'aé ñ\u00ff', '中文字 a', '\ud800x\udc00y'];
  const text = (length: number, mixed: boolean): string =>
    Array.from({ length }, () => {
      const alphabet = alphabets[mixed ? Math.floor(random() * alphabets.length) : Math.floor(random() * 2)]!;
      return alphabet[Math.floor(random() * alphabet.length)]!;
    }).join('');

  it('matches its definition on Latin-1 and UTF-16 text, for blocks that do and do not fit the read buffer', () => {
    for (const blockChars of [8, 6, 10, 12, 64, 100, 8192, 12_000, 20_000]) {
      for (const mixed of [false, true]) {
        const prompt = text(Math.max(3 * blockChars, 40_000) + 5, mixed);
        expect(prefixBlockHashes(prompt, blockChars, 4096), `blockChars ${blockChars}, mixed ${mixed}`).toEqual(reference(prompt, blockChars, 4096));
      }
    }
    expect(prefixBlockHashes('x'.repeat(640), 64, 3)).toEqual(reference('x'.repeat(640), 64, 3));
    expect(prefixBlockHashes('short', 64, 4096)).toEqual([]);
  });

  it('hashes a prefix the same whatever follows it', () => {
    const shared = text(64 * 40, false);
    const plain = prefixBlockHashes(`${shared}${'question '.repeat(50)}`, 64, 4096);
    const wide = prefixBlockHashes(`${shared}${'問題 '.repeat(150)}`, 64, 4096);
    expect(wide.slice(0, 40)).toEqual(plain.slice(0, 40));
    expect(wide[40]).not.toBe(plain[40]);
  });
});
