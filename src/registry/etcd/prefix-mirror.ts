import { Range, type Etcd3, type IRangeResponse, type IWatchResponse, type Watcher } from 'etcd3';
import { monotonicNow } from '../../common/clock.js';

/**
 * A local copy of every key under one etcd prefix, kept current by list + watch.
 *
 * - `start` lists the prefix (rejecting if etcd cannot be read) and watches from the next
 *   revision, so no change between the list and the watch is missed and changes are applied
 *   in revision order.
 * - While etcd is unreachable the copy is kept as it was; the etcd3 client resumes the watch
 *   from the last revision it saw when etcd returns.
 * - When the watch cannot resume (its revision was compacted meanwhile, or etcd cancelled it)
 *   the prefix is listed again, retrying with backoff until etcd answers, and the copy is
 *   replaced in one step; the old copy stays in use until then.
 * - When etcd answers a resumed watch at a revision lower than one already seen, it is not
 *   the history this copy came from (the cluster was wiped and rebuilt, or restored from an
 *   old snapshot): a watch resumed from the old revision would wait, silent, until the new
 *   history caught up — for a busy fleet, days. The prefix is listed again at once; keys
 *   missing from that listing are kept for {@link RESET_GRACE_MS} (their owners are writing
 *   them again into the new cluster) and dropped only if they have not come back by then.
 * - The copy has a budget ({@link MirrorLimits}): keys and bytes in all, and bytes per key
 *   and per value. A value over its limit is refused (reported, the key treated as absent);
 *   keys beyond the budget are not read — a listing stops there, and a watch event for a new
 *   key is dropped — and this is reported once, naming the prefix and the limit. Once deletes
 *   have made room again (below nine tenths of the budget) the prefix is listed again, at most
 *   once per {@link REFILL_GAP_MS}, to pick up what was dropped.
 */
export class PrefixMirror {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #onChange: (changed: readonly string[] | undefined) => void;
  readonly #requestTimeoutMs: number;
  #entries = new Map<string, string>();
  #watcher: Watcher | undefined;
  #closed = false;
  #relistTimer: NodeJS.Timeout | undefined;
  /** Generation of the current watch; events of an older one are ignored. */
  #generation = 0;
  /** The highest etcd revision this copy has seen (listing or watch event). */
  #revision = 0n;
  /** Relists in a row caused by etcd answering behind {@link #revision}, for their backoff. */
  #behind = 0;
  /** Keys kept from before a reset, absent from etcd since: dropped when the grace ends. */
  #carried = new Set<string>();
  #graceTimer: NodeJS.Timeout | undefined;
  readonly #limits: MirrorLimits;
  readonly #refuse: (source: string, reason: string) => void;
  /** UTF-8 bytes of every key and value in {@link #entries}. */
  #bytes = 0;
  /** Whether keys were left out for want of room: the copy lacks some of what etcd holds. */
  #incomplete = false;
  #refillTimer: NodeJS.Timeout | undefined;
  #lastRefill = 0;

  /**
   * @param onChange called after each change with the keys that changed, or undefined when the
   *   whole copy was replaced (the first listing, a relist)
   * @param limits the copy's budget
   * @param refuse told of each value refused and of keys left out for want of room (once per
   *   source and reason: the caller's input guard rate-limits the warnings)
   */
  constructor(
    client: Etcd3,
    prefix: string,
    requestTimeoutMs: number,
    onChange: (changed: readonly string[] | undefined) => void,
    limits: MirrorLimits,
    refuse: (source: string, reason: string) => void,
  ) {
    this.#client = client;
    this.#prefix = prefix;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#onChange = onChange;
    this.#limits = limits;
    this.#refuse = refuse;
  }

  /** Whether keys were left out for want of room (see {@link MirrorLimits}). */
  get incomplete(): boolean {
    return this.#incomplete;
  }

  /** Key -> value (UTF-8) of everything under the prefix, as last seen. */
  get entries(): ReadonlyMap<string, string> {
    return this.#entries;
  }

  /** Lists, then watches. Rejects when the first list fails. */
  async start(): Promise<void> {
    const revision = await this.#list();
    await this.#watch(revision);
  }

  /** Stops watching; completes within {@link CANCEL_BOUND_MS} whatever state etcd3 is in. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#generation++;
    clearTimeout(this.#relistTimer);
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#refillTimer);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher !== undefined) await cancelWithin(watcher, CANCEL_BOUND_MS);
  }

  /** Replaces the copy with a fresh listing ({@link listPrefix}); returns the revision it was read at. */
  async #list(carryOver = false): Promise<string> {
    const listing = await listPrefix(this.#client, this.#prefix, this.#requestTimeoutMs, this.#limits, this.#refuse);
    const entries = listing.entries;
    let bytes = listing.bytes;
    if (carryOver) bytes += this.#carryOver(entries, bytes);
    else this.#carried.clear();
    this.#incomplete = listing.full;
    this.#bytes = bytes;
    this.#entries = entries;
    this.#revision = BigInt(listing.revision);
    this.#onChange(undefined);
    return listing.revision;
  }

  async #watch(listedAt: string): Promise<void> {
    const generation = ++this.#generation;
    const watcher = await this.#client
      .watch()
      .prefix(this.#prefix)
      .startRevision((BigInt(listedAt) + 1n).toString())
      .create();
    if (this.#closed || generation !== this.#generation) {
      await cancelWithin(watcher, CANCEL_BOUND_MS);
      return;
    }
    this.#watcher = watcher;
    watcher.on('data', (response: IWatchResponse) => {
      if (generation === this.#generation) this.#apply(response);
    });
    // Also the answer to a watch resumed after a broken stream: its revision is where etcd is now.
    watcher.on('connected', (response: IWatchResponse) => {
      if (generation !== this.#generation) return;
      if (BigInt(response.header.revision) >= this.#revision) this.#behind = 0;
      else this.#reset(watcher);
    });
    // 'error' means the watch was cancelled by etcd (typically: its start revision has been
    // compacted away after a reconnect) and will not resume by itself.
    watcher.on('error', () => {
      if (generation === this.#generation) this.#relist(0);
    });
  }

  #apply(response: IWatchResponse): void {
    const revision = BigInt(response.header.revision);
    if (revision > this.#revision) this.#revision = revision;
    if (response.events.length === 0) return;
    const changed: string[] = [];
    for (const event of response.events) {
      const key = event.kv.key.toString('utf8');
      this.#carried.delete(key);
      const old = this.#entries.get(key);
      const size =
        event.type === 'Delete'
          ? undefined
          : admit(
              this.#prefix,
              this.#limits,
              this.#refuse,
              event.kv,
              this.#entries.size,
              this.#bytes - (old === undefined ? 0 : entryBytes(key, old)),
              old !== undefined,
            );
      if (size === 'full') {
        // A new key with no room for it: not read (etcd still holds it; a later listing may).
        this.#incomplete = true;
        this.#reportFull();
        continue;
      }
      changed.push(key);
      if (old !== undefined) {
        this.#entries.delete(key);
        this.#bytes -= entryBytes(key, old);
      }
      if (size !== undefined && size !== 'refused') {
        this.#entries.set(key, event.kv.value.toString('utf8'));
        this.#bytes += size;
      }
    }
    if (this.#incomplete) this.#refillWhenRoom();
    if (changed.length > 0) this.#onChange(changed);
  }

  #reportFull(): void {
    reportFull(this.#prefix, this.#limits, this.#refuse);
  }

  /** Lists again once deletes have brought the copy below nine tenths of its budget, to pick up what was left out. */
  #refillWhenRoom(): void {
    const { maxKeys, maxBytes } = this.#limits;
    if (this.#refillTimer !== undefined || this.#entries.size > maxKeys * 0.9 || this.#bytes > maxBytes * 0.9) return;
    const wait = Math.max(0, this.#lastRefill + REFILL_GAP_MS - monotonicNow());
    this.#refillTimer = setTimeout(() => {
      this.#refillTimer = undefined;
      if (this.#closed || !this.#incomplete) return;
      this.#lastRefill = monotonicNow();
      const watcher = this.#watcher;
      this.#generation++;
      if (watcher !== undefined) {
        // A live watch (etcd did not cancel it): cancelled in the background, as in a reset.
        watcher.removeAllListeners('data');
        this.#watcher = undefined;
        void cancelWithin(watcher, CANCEL_BOUND_MS);
      }
      this.#relist(0);
    }, wait);
    this.#refillTimer.unref();
  }

  /**
   * etcd is behind what this copy has seen: a new history. Lists again, keeping what is missing
   * for a grace period. The watch is live (etcd did not cancel it) and is cancelled in the
   * background. In a row (a member still catching up answers behind too), relists back off.
   */
  #reset(watcher: Watcher): void {
    this.#generation++;
    watcher.removeAllListeners('data');
    if (this.#watcher === watcher) this.#watcher = undefined;
    void cancelWithin(watcher, CANCEL_BOUND_MS);
    this.#revision = 0n;
    this.#relist(this.#behind++, true);
  }

  /**
   * Keeps in `entries` the keys of the current copy that the new listing lacks, for
   * {@link RESET_GRACE_MS}, as far as the budget has room (`bytes`: what `entries` holds);
   * returns the bytes added.
   */
  #carryOver(entries: Map<string, string>, bytes: number): number {
    this.#carried = new Set();
    let added = 0;
    for (const [key, value] of this.#entries) {
      if (entries.has(key)) continue;
      const size = entryBytes(key, value);
      if (entries.size >= this.#limits.maxKeys || bytes + added + size > this.#limits.maxBytes) break;
      entries.set(key, value);
      added += size;
      this.#carried.add(key);
    }
    if (this.#carried.size === 0) return added;
    clearTimeout(this.#graceTimer);
    this.#graceTimer = setTimeout(() => {
      const gone = [...this.#carried];
      this.#carried = new Set();
      for (const key of gone) {
        const value = this.#entries.get(key);
        if (value === undefined) continue;
        this.#entries.delete(key);
        this.#bytes -= entryBytes(key, value);
      }
      if (gone.length > 0) this.#onChange(gone);
    }, RESET_GRACE_MS);
    this.#graceTimer.unref();
    return added;
  }

  #relist(attempt: number, carryOver = false): void {
    if (this.#closed) return;
    this.#generation++;
    // Not cancelled: etcd already cancelled it, and etcd3 has already forgotten it. Asking
    // etcd3 to cancel it again sends a cancel request whose answer etcd3 cannot match to a
    // watcher ("Failed to find watcher for IWatchResponse", thrown from the stream's data
    // handler) and waits for an end that never comes.
    this.#watcher?.removeAllListeners('data');
    this.#watcher = undefined;
    // At random from half to all of the backoff: consumers that lost their watch together (a
    // compaction, a cluster back from an outage) do not all list again in the same millisecond.
    const delay = attempt === 0 ? 0 : Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
    this.#relistTimer = setTimeout(() => {
      this.#list(carryOver)
        .then((revision) => this.#watch(revision))
        .catch(() => this.#relist(attempt + 1, carryOver));
    }, delay);
    this.#relistTimer.unref();
  }
}

/**
 * How long closing waits for etcd to confirm a watch's cancellation. etcd3's cancel waits for
 * an answer that may never come (the stream is down, or etcd cancelled the watch first); the
 * registry closes the whole client right after, which ends the watch in any case.
 */
const CANCEL_BOUND_MS = 1000;

async function cancelWithin(watcher: Watcher, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    watcher.cancel().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
  watcher.removeAllListeners();
  // etcd3 may still emit on it; an 'error' emitted with no listener would throw.
  watcher.on('error', () => {});
}

/**
 * How long keys missing from the listing after a reset are kept. Providers write their keys
 * again as soon as the new cluster answers (attempts at most 2 s apart, provider-session.ts);
 * one that has not after 10 s is taken for gone.
 */
const RESET_GRACE_MS = 10_000;

/** A mirror's budget: what it holds of a prefix at most. */
export interface MirrorLimits {
  /** Keys in all. */
  readonly maxKeys: number;
  /** UTF-8 bytes of the keys and values in all. */
  readonly maxBytes: number;
  /** Bytes of one key: a longer one is never a key this registry writes. */
  readonly maxKeyBytes: number;
  /** Bytes of one value: a longer one would be refused when parsed, so it is not kept. */
  readonly maxValueBytes: number;
}

/** Shortest gap between two listings made to pick up keys left out for want of room. */
const REFILL_GAP_MS = 5000;

function entryBytes(key: string, value: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(value);
}

/** What {@link listPrefix} read: the keys and values, their bytes, whether some were left out, the revision. */
export interface PrefixListing {
  readonly entries: Map<string, string>;
  readonly bytes: number;
  readonly full: boolean;
  readonly revision: string;
}

/**
 * Every key and value under `prefix`, read in pages at one revision, within `limits` (values
 * over their limit refused and reported; listing stops when the budget is full, which is
 * reported once). Anyone who can write under the prefix can put values of up to etcd's
 * request limit (1.5 MiB), and one answer holding all of them would pass the client's 4 MiB
 * message limit and fail every listing: a page refused as too large is read again in halves,
 * down to one key. Each page has the client's deadline per attempt (a hung member costs one
 * attempt, then the page goes to another member); the listing as a whole has `requestTimeoutMs`.
 */
export async function listPrefix(
  client: Etcd3,
  prefix: string,
  requestTimeoutMs: number,
  limits: MirrorLimits,
  refuse: (source: string, reason: string) => void,
): Promise<PrefixListing> {
  const entries = new Map<string, string>();
  let bytes = 0;
  let full = false;
  const end = Range.prefix(prefix).end;
  let from = Buffer.from(prefix);
  let revision: string | undefined;
  let page = LIST_PAGE_KEYS;
  const deadline = monotonicNow() + requestTimeoutMs;
  for (;;) {
    if (monotonicNow() > deadline) throw new Error(`timed out after ${requestTimeoutMs} ms`);
    let response: IRangeResponse;
    ({ response, page } = await readPage(page, (keys) => {
      const builder = client.getAll().inRange(new Range(from, end)).limit(keys);
      return (revision === undefined ? builder : builder.revision(revision)).exec();
    }));
    revision ??= response.header.revision;
    for (const kv of response.kvs) {
      const size = admit(prefix, limits, refuse, kv, entries.size, bytes, false);
      if (size === 'full') {
        full = true;
        break;
      }
      if (size !== 'refused') {
        entries.set(kv.key.toString('utf8'), kv.value.toString('utf8'));
        bytes += size;
      }
    }
    const last = response.kvs[response.kvs.length - 1];
    if (full || !response.more || last === undefined) break;
    from = Buffer.concat([last.key, ZERO]);
  }
  if (full) reportFull(prefix, limits, refuse);
  return { entries, bytes, full, revision };
}

/**
 * Whether a key and its value fit, given `count` keys and `bytes` held without it (`present`:
 * the key is already counted in `count`): their size in bytes, 'refused' when the key or value
 * alone is over its limit (reported), 'full' when the budget has no room left.
 */
function admit(
  prefix: string,
  limits: MirrorLimits,
  refuse: (source: string, reason: string) => void,
  kv: { readonly key: Buffer; readonly value: Buffer },
  count: number,
  bytes: number,
  present: boolean,
): number | 'refused' | 'full' {
  if (kv.key.length > limits.maxKeyBytes) {
    refuse(prefix, `a key of ${kv.key.length} bytes, at most ${limits.maxKeyBytes} allowed; not read`);
    return 'refused';
  }
  if (kv.value.length > limits.maxValueBytes) {
    refuse(kv.key.toString('utf8'), `${kv.value.length} bytes, at most ${limits.maxValueBytes} allowed`);
    return 'refused';
  }
  const size = kv.key.length + kv.value.length;
  if ((!present && count >= limits.maxKeys) || bytes + size > limits.maxBytes) return 'full';
  return size;
}

function reportFull(prefix: string, limits: MirrorLimits, refuse: (source: string, reason: string) => void): void {
  const mib = Math.round(limits.maxBytes / 1024 / 1024);
  refuse(prefix, `holds more than this registry keeps of it (${limits.maxKeys} keys, ${mib} MiB); the keys beyond are not read until deletes make room`);
}

/** Keys read per page of a listing (fewer when a page is too large to receive). */
const LIST_PAGE_KEYS = 500;
const ZERO = Buffer.from([0]);

/**
 * Reads a page of at most `page` keys with `read`, halving the page while etcd (or the client's
 * message limit) refuses the answer as too large, down to one key; the answer and the page size
 * it took.
 */
export async function readPage<T>(page: number, read: (keys: number) => Promise<T>): Promise<{ response: T; page: number }> {
  for (;;) {
    try {
      return { response: await read(page), page };
    } catch (error) {
      if (page > 1 && tooLarge(error)) {
        page = Math.max(1, Math.floor(page / 2));
        continue;
      }
      throw error;
    }
  }
}

/** Whether `error` is gRPC's refusal of an answer over the client's message size limit. */
function tooLarge(error: unknown): boolean {
  const text = `${(error as { code?: unknown })?.code ?? ''} ${(error as Error)?.message ?? ''}`;
  return /RESOURCE_EXHAUSTED|larger than max/i.test(text);
}
