/**
 * `text` with the credentials of every URL in it hidden: `etcd://user:secret@host` becomes
 * `etcd://***@host`, `https://token@host` becomes `https://***@host`. Error messages and log
 * lines quote URLs an operator typed (a registry, an engine, its metrics endpoint), and those
 * lines end up in terminals, log stores and tickets, where a password must not.
 */
export function hideCredentials(text: string): string {
  // A URL's user-info: after `//`, up to the first `@`, holding no `/`, whitespace or quote (so
  // the match stays inside one URL, and inside one JSON string of a log line).
  return text.includes('@') ? text.replace(/\/\/[^@/\s"'`]+@/g, '//***@') : text;
}
