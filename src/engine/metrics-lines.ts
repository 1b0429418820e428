/**
 * The lines of a Prometheus text exposition that name one of the wanted metric families, kept
 * as the body arrives, chunk by chunk. The parser then reads a few hundred bytes instead of the
 * whole answer: parsing 4 MiB of exposition takes 400–560 ms of the event loop at once, where
 * looking through one 64 KiB chunk for the wanted names takes well under a millisecond.
 */
export class MetricsLines {
  /**
   * The most characters of lines kept: an engine has a few lines per model of the families read;
   * an answer with more would cost the parser its time again, and fails the poll.
   */
  static readonly MAX_KEPT_CHARS = 64 * 1024;

  readonly #names: readonly string[];
  readonly #kept: string[] = [];
  #keptChars = 0;
  /** The start of a line whose end has not arrived yet. */
  #partial = '';

  /** `names`: the metric families whose samples (and `# TYPE`/`# HELP` lines) are kept. */
  constructor(names: Iterable<string>) {
    this.#names = [...new Set(names)];
  }

  /** Takes the next piece of the body; throws when the lines kept pass {@link MAX_KEPT_CHARS}. */
  feed(text: string): void {
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      const line = start === 0 && this.#partial !== '' ? this.#partial + text.slice(0, end) : text.slice(start, end);
      if (start === 0) this.#partial = '';
      this.#take(line);
      start = end + 1;
    }
    // The body's size is capped by the reader, so a line without end is bounded by it too.
    if (start < text.length) this.#partial += text.slice(start);
  }

  /** The kept lines, once the body has ended. */
  text(): string {
    if (this.#partial !== '') this.#take(this.#partial);
    this.#partial = '';
    return this.#kept.length === 0 ? '' : `${this.#kept.join('\n')}\n`;
  }

  #take(line: string): void {
    const from = line.startsWith('# TYPE ') || line.startsWith('# HELP ') ? 7 : 0;
    for (const name of this.#names) {
      if (!line.startsWith(name, from)) continue;
      const next = line.charCodeAt(from + name.length);
      // `{` (labels), a space or a tab (the value): the whole name, not a longer one it starts.
      if (next === 0x7b || next === 0x20 || next === 0x09) {
        this.#keptChars += line.length + 1;
        if (this.#keptChars > MetricsLines.MAX_KEPT_CHARS) {
          throw new Error(`the metrics hold more than ${MetricsLines.MAX_KEPT_CHARS} characters of the families read (${this.#names.join(', ')})`);
        }
        this.#kept.push(line);
        return;
      }
    }
  }
}
