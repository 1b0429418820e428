import type { Logger } from './log.js';

/** The most of one problem's description that goes in a line: a decoder's message can quote what it refused. */
const MAX_PROBLEM_CHARS = 300;

/**
 * Warnings about a run of the same kind of problem, rate-limited: the first is logged at once,
 * later ones at most once per `everyMs`, each with the count of those held back since — a peer
 * that keeps sending garbage must not become a flood of log lines. Descriptions are cut to 300
 * characters.
 */
export class ThrottledWarning {
  readonly #log: Logger;
  readonly #everyMs: number;
  readonly #prefix: string;
  #warnedAt = -Infinity;
  #unwarned = 0;

  /** `prefix` starts every line (what the problems are about). */
  constructor(log: Logger, everyMs: number, prefix: string) {
    this.#log = log;
    this.#everyMs = everyMs;
    this.#prefix = prefix;
  }

  /** Logs `problem` now, or counts it for the next line. */
  warn(problem: string): void {
    const now = performance.now();
    if (now - this.#warnedAt < this.#everyMs) {
      this.#unwarned++;
      return;
    }
    const more = this.#unwarned === 0 ? '' : ` (and ${this.#unwarned} more since the last report)`;
    const said = problem.length > MAX_PROBLEM_CHARS ? `${problem.slice(0, MAX_PROBLEM_CHARS)}…` : problem;
    this.#log.warn(`${this.#prefix}${said}${more}`);
    this.#warnedAt = now;
    this.#unwarned = 0;
  }
}
