/*
 * What an error read from a peer may carry. Its message ends up in the caller's logs and
 * terminals, and its retry hint in timers: a provider that answers with an 8 MB message, ANSI
 * escapes and forged log lines, or a hint of a thousand years, must not get them there.
 */

/** The longest message taken from a peer's error, in UTF-16 code units; the rest is cut, and said so. */
export const MAX_WIRE_MESSAGE_CHARS = 4096;

/** The longest retry hint taken from a peer (10 minutes); a longer one is not a hint but a lie, and is dropped. */
export const MAX_WIRE_RETRY_AFTER_MS = 600_000;

/**
 * A peer's error message made safe to print: control characters (C0, DEL, C1) become spaces —
 * a CR or LF can no longer start a forged log line, nor an ESC restyle a terminal — and text past
 * {@link MAX_WIRE_MESSAGE_CHARS} is cut, with the number of characters left out.
 */
export function wireMessage(text: string): string {
  const cut = text.length > MAX_WIRE_MESSAGE_CHARS;
  const kept = cut ? text.slice(0, MAX_WIRE_MESSAGE_CHARS) : text;
  let clean: string | undefined;
  for (let i = 0; i < kept.length; i++) {
    const code = kept.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      clean = replaceControls(kept);
      break;
    }
  }
  const safe = clean ?? kept;
  return cut ? `${safe}… (${text.length - MAX_WIRE_MESSAGE_CHARS} more characters not shown)` : safe;
}

/** A peer's retry hint when it is a number from 0 to {@link MAX_WIRE_RETRY_AFTER_MS}; otherwise none. */
export function wireRetryAfterMs(value: unknown): number | undefined {
  return typeof value === 'number' && value >= 0 && value <= MAX_WIRE_RETRY_AFTER_MS ? value : undefined;
}

function replaceControls(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out += code < 0x20 || (code >= 0x7f && code <= 0x9f) ? ' ' : text[i];
  }
  return out;
}
