/** Strings up to this long are scanned in JavaScript; longer ones by isWellFormed. */
const SHORT_STRING = 64;

/**
 * Whether `text` has no lone surrogate, so UTF-8 can carry it as it is (a lone surrogate has no
 * UTF-8 form: an encoder writes U+FFFD or bytes a strict decoder refuses). Short strings are
 * scanned here: String.prototype.isWellFormed is a runtime call of ~60 ns even for one
 * character, and this runs on every key and string of a payload.
 */
export function isWellFormed(text: string): boolean {
  if (text.length > SHORT_STRING) return (text as string & { isWellFormed(): boolean }).isWellFormed();
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0xd800 || code > 0xdfff) continue;
    // A high surrogate followed by a low one is a pair; anything else is alone.
    if (code > 0xdbff) return false;
    const next = text.charCodeAt(++i);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
  }
  return true;
}
