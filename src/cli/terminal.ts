import { hideCredentials } from '../common/credentials.js';

/**
 * What the command writes to the terminal. Most of it comes from registries and providers —
 * service and method names, metadata, error messages — which anyone who can write to the
 * registry controls: escape sequences in them would clear the screen, set the window title,
 * write to the clipboard (OSC 52) or hide text behind bidirectional overrides. Every write goes
 * through {@link terminalSafe}; newlines and tabs stay.
 */

/** Whether the terminal would act on `code`: C0 and C1 controls (but tab and newline), DEL, and the bidirectional marks, overrides and isolates. */
function unsafe(code: number): boolean {
  return (
    (code < 0x20 && code !== 0x09 && code !== 0x0a) ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x200e ||
    code === 0x200f ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

/** `text` with every character a terminal would act on shown as a `\uXXXX` escape instead. */
export function terminalSafe(text: string): string {
  let safe: string | undefined;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (!unsafe(code)) {
      if (safe !== undefined) safe += text[index];
      continue;
    }
    safe ??= text.slice(0, index);
    safe += `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return safe ?? text;
}

/** Writes to standard output, made {@link terminalSafe}. */
export function writeOut(text: string): void {
  process.stdout.write(terminalSafe(text));
}

/**
 * Writes to standard error, made {@link terminalSafe}, with the credentials of URLs hidden:
 * what goes there is errors and notices, which quote the URLs an operator typed.
 */
export function writeErr(text: string): void {
  process.stderr.write(terminalSafe(hideCredentials(text)));
}
