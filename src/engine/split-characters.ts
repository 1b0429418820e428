import { isWellFormed } from '../serializer/well-formed.js';

/**
 * Rejoins characters an engine split across chunks. A character outside the Basic Multilingual
 * Plane (an emoji, many CJK extension characters) is two UTF-16 code units; an engine that
 * counts in code units, or a proxy that re-chunks its text, can end one chunk with the first
 * half (a high surrogate, `\ud83d`) and start the next with the second. Each half alone has no
 * UTF-8 form, so sent as they came both would arrive as U+FFFD; a trailing high surrogate is
 * held back and put in front of the next text instead. What is still lone after that becomes
 * U+FFFD, as an engine that spoke UTF-8 would have sent it.
 */
export class SplitCharacters {
  #held = '';

  /** The text of `text` that can be sent now: well-formed, with a trailing first half held for the next call. */
  take(text: string): string {
    let joined = this.#held === '' ? text : this.#held + text;
    this.#held = '';
    const last = joined.charCodeAt(joined.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) {
      this.#held = joined.slice(-1);
      joined = joined.slice(0, -1);
    }
    return isWellFormed(joined) ? joined : (joined as string & { toWellFormed(): string }).toWellFormed();
  }

  /** What is still held once the text is over: U+FFFD for a first half whose second never came, else ''. */
  flush(): string {
    const held = this.#held;
    this.#held = '';
    return held === '' ? '' : '\ufffd';
  }
}
