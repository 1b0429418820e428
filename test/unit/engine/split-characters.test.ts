import { describe, expect, it } from 'vitest';
import { SplitCharacters } from '../../../src/engine/split-characters.js';

describe('characters an engine split across chunks', () => {
  it('a character split between two chunks is sent whole with the second', () => {
    const characters = new SplitCharacters();
    expect(characters.take('a\ud83d')).toBe('a');
    expect(characters.take('\ude00b')).toBe('😀b');
    expect(characters.flush()).toBe('');
  });

  it('a chunk of only a first half sends nothing until the second half comes', () => {
    const characters = new SplitCharacters();
    expect(characters.take('\ud83d')).toBe('');
    expect(characters.take('\ude80')).toBe('🚀');
  });

  it('a half that stays lone becomes U+FFFD, at once when the next chunk does not complete it, at the end otherwise', () => {
    const characters = new SplitCharacters();
    expect(characters.take('x\ud83d')).toBe('x');
    expect(characters.take('y')).toBe('\ufffdy');
    expect(characters.take('\ude00')).toBe('\ufffd');
    expect(characters.take('z\ud83d')).toBe('z');
    expect(characters.flush()).toBe('\ufffd');
    expect(characters.flush()).toBe('');
  });

  it('well-formed text passes unchanged', () => {
    const characters = new SplitCharacters();
    for (const text of ['', 'plain', 'é✓🚀', '\u{10ffff}']) expect(characters.take(text)).toBe(text);
  });
});
