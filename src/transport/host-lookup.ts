import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { monotonicNow } from '../common/clock.js';

/** Settings of a {@link HostLookup}. */
export interface HostLookupOptions {
  /** Lookups handed to the system resolver at once. */
  readonly maxConcurrent: number;
  /** A caller waiting longer than this for a name gets an error (the lookup itself runs on, see below). */
  readonly timeoutMs: number;
  /** How long an answer is reused. */
  readonly ttlMs: number;
  /** How long a failure (no such name, or a lookup that took longer than `timeoutMs`) is reused. */
  readonly failureTtlMs: number;
  /** Names remembered at most (the oldest forgotten first), and names waiting at most. */
  readonly maxNames: number;
  /** The system lookup; `dns.lookup` unless a test gives another. */
  readonly lookup?: (
    hostname: string,
    options: dns.LookupAllOptions,
    callback: (error: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
  ) => void;
}

/** The defaults: one lookup at a time, answers kept 30 s and failures 10 s, 1,024 names. */
export const DEFAULT_HOST_LOOKUP: Omit<HostLookupOptions, 'timeoutMs'> = { maxConcurrent: 1, ttlMs: 30_000, failureTtlMs: 10_000, maxNames: 1024 };

type Found = { readonly addresses: readonly dns.LookupAddress[] } | { readonly error: NodeJS.ErrnoException };

/**
 * Host-name lookups for one consumer's connections: cached, shared by every connect to one
 * name, bounded in concurrency and in the time a connect waits. `dns.lookup` runs getaddrinfo
 * on libuv's thread pool, where libuv lets such slow work take two of the four threads; a
 * registry naming hosts whose resolver does not answer (2 s or more a lookup) would make every
 * connect by name queue one more lookup there, without limit, and the process's other lookups
 * (its registry's, a gateway's engine) wait behind all of them (27.9 s for 40 such names). Here the consumer
 * hands the resolver one name at a time, the others wait in its own queue (each caller at most
 * `timeoutMs`), and a name that failed or was too slow is not looked up again for
 * `failureTtlMs`. A lookup cannot be cancelled: one that outlives its callers still holds its
 * slot until the resolver answers, which is what keeps the thread pool's share bounded.
 */
export class HostLookup {
  readonly #options: HostLookupOptions;
  readonly #base: NonNullable<HostLookupOptions['lookup']>;
  readonly #cache = new Map<string, { readonly found: Found; readonly until: number }>();
  /** Callers waiting for a name being looked up or queued. */
  readonly #waiters = new Map<string, Set<(found: Found) => void>>();
  readonly #queue: string[] = [];
  #running = 0;

  constructor(options: HostLookupOptions) {
    this.#options = options;
    this.#base = options.lookup ?? ((hostname, lookupOptions, callback) => dns.lookup(hostname, lookupOptions, callback));
  }

  /** Lookups handed to the resolver and not answered yet. */
  get running(): number {
    return this.#running;
  }

  /** For `net.connect({ lookup })` and `tls.connect({ lookup })`. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const deliver = (found: Found): void => {
      if ('error' in found) return callback(found.error, '', 0);
      const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
      const addresses = family === 4 || family === 6 ? found.addresses.filter((entry) => entry.family === family) : [...found.addresses];
      if (addresses.length === 0) return callback(lookupError(hostname, 'ENOTFOUND', `no IPv${family} address for ${hostname}`), '', 0);
      if (options.all === true) return callback(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    };
    const cached = this.#cache.get(hostname);
    if (cached !== undefined && cached.until > monotonicNow()) {
      process.nextTick(deliver, cached.found);
      return;
    }
    const waiter = (found: Found): void => {
      clearTimeout(timer);
      deliver(found);
    };
    const timer = setTimeout(() => {
      const error = lookupError(hostname, 'ETIMEOUT', `looking up ${hostname} took longer than ${this.#options.timeoutMs} ms`);
      // Given up: a name nobody waits for any more is not looked up at all when its turn comes,
      // and is a failure for `failureTtlMs` (until its own lookup, if one runs, answers): else
      // the connects retried after their backoff would queue it again, and wait again, forever.
      const waiting = this.#waiters.get(hostname);
      waiting?.delete(waiter);
      if (waiting?.size === 0 && !this.#cache.has(hostname)) this.#remember(hostname, { error }, monotonicNow());
      deliver({ error });
    }, this.#options.timeoutMs);
    this.#wait(hostname, waiter);
  };

  #wait(hostname: string, waiter: (found: Found) => void): void {
    const waiting = this.#waiters.get(hostname);
    if (waiting !== undefined) {
      waiting.add(waiter);
      return;
    }
    if (this.#waiters.size >= this.#options.maxNames) {
      waiter({
        error: lookupError(hostname, 'EAI_AGAIN', `${this.#waiters.size} host names wait to be looked up already (at most ${this.#options.maxNames})`),
      });
      return;
    }
    this.#waiters.set(hostname, new Set([waiter]));
    if (this.#running < this.#options.maxConcurrent) this.#start(hostname);
    else this.#queue.push(hostname);
  }

  #start(hostname: string): void {
    this.#running++;
    this.#base(hostname, { all: true }, (error, addresses) => {
      this.#running--;
      const now = monotonicNow();
      // An answer that came after its callers gave up is kept all the same: the next connect has it at once.
      const found: Found = error !== null ? { error } : { addresses };
      this.#remember(hostname, found, now);
      const waiting = this.#waiters.get(hostname);
      this.#waiters.delete(hostname);
      if (waiting !== undefined) for (const waiter of waiting) waiter(found);
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
        if ((this.#waiters.get(next)?.size ?? 0) > 0) {
          this.#start(next);
          break;
        }
        this.#waiters.delete(next);
      }
    });
  }

  #remember(hostname: string, found: Found, now: number): void {
    this.#cache.delete(hostname);
    if (this.#cache.size >= this.#options.maxNames) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(hostname, { found, until: now + ('error' in found ? this.#options.failureTtlMs : this.#options.ttlMs) });
  }
}

function lookupError(hostname: string, code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${message}`), { code, hostname, syscall: 'getaddrinfo' });
}
