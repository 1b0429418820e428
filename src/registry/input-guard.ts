import { monotonicNow } from '../common/clock.js';
/**
 * Where a registry reads what others wrote (etcd keys and values, files and their names) and
 * decides what to believe. Everything read is untrusted: a malformed entry is dropped,
 * counted, and reported in a warning naming the key or file and what is wrong with it — it
 * never throws out of a watch or poll callback, never hides its neighbours, and never stops a
 * consumer from starting.
 *
 * Warnings are rate-limited (at most {@link WARNINGS_PER_WINDOW} a minute per registry, the
 * rest summed up in the next one): whoever can write junk to the registry must not be able to
 * flood every consumer's log as well.
 */
export class RegistryInputGuard {
  readonly #registry: string;
  readonly #warn: (message: string) => void;
  #dropped = 0;
  #windowStart = 0;
  #warnedInWindow = 0;
  #suppressed = 0;
  /** Source -> the reason it was last dropped for: a poll that meets the same bad file again does not count it again. */
  readonly #known = new Map<string, string>();

  /**
   * @param registry how warnings name the registry (its URL or folder)
   * @param warn where warnings go; by default a process warning (`SHUTTLE_REGISTRY_INPUT`)
   */
  constructor(registry: string, warn: (message: string) => void = processWarning) {
    this.#registry = registry;
    this.#warn = warn;
  }

  /** Entries dropped so far (each bad key or file once per distinct reason). */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * JSON text from `source`, checked: the value `check` accepts, or undefined when the text is
   * longer than `maxBytes`, is not JSON, or `check` returns a reason (dropped and counted).
   */
  read<T>(source: string, raw: string | Buffer, maxBytes: number, check: (value: unknown) => T | string): T | undefined {
    const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
    if (size > maxBytes) return this.drop(source, `${size} bytes, at most ${maxBytes} allowed`);
    let value: unknown;
    try {
      value = JSON.parse(raw.toString()) as unknown;
    } catch {
      return this.drop(source, 'not JSON');
    }
    const checked = check(value);
    return typeof checked === 'string' ? this.drop(source, checked) : checked;
  }

  /** Decodes a URI-encoded key segment; undefined (dropped) when it is not valid. */
  decode(source: string, segment: string): string | undefined {
    try {
      return decodeURIComponent(segment);
    } catch {
      return this.drop(source, 'its name is not valid URI encoding');
    }
  }

  /** Forgets a source that is gone, so it counts again if it comes back bad. */
  forget(source: string): void {
    this.#known.delete(source);
  }

  /** Runs `fn`, turning a throw into a dropped entry: for callbacks nothing may escape from. */
  contain(source: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.drop(source, `failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Counts a refused entry and warns about it (rate-limited). Returns undefined for chaining. */
  drop(source: string, reason: string): undefined {
    if (this.#known.get(source) === reason) return undefined;
    // Bounded: a flood of distinct bad names must not grow this map without end.
    if (this.#known.size >= MAX_KNOWN) this.#known.clear();
    this.#known.set(source, reason);
    this.#dropped++;
    const now = monotonicNow();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#windowStart = now;
      this.#warnedInWindow = 0;
    }
    if (this.#warnedInWindow >= WARNINGS_PER_WINDOW) {
      this.#suppressed++;
      return undefined;
    }
    this.#warnedInWindow++;
    const more = this.#suppressed === 0 ? '' : ` (and ${this.#suppressed} more dropped without a warning)`;
    this.#suppressed = 0;
    this.#warn(`registry ${this.#registry}: ignoring ${JSON.stringify(source.slice(0, 300))}: ${reason}${more}`);
    return undefined;
  }
}

/** Warnings per registry per {@link WINDOW_MS}. */
export const WARNINGS_PER_WINDOW = 5;
const WINDOW_MS = 60_000;
const MAX_KNOWN = 10_000;

function processWarning(message: string): void {
  process.emitWarning(message, { code: 'SHUTTLE_REGISTRY_INPUT' });
}
