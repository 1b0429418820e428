import { lstat, readdir, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { checkInt, checkKnownKeys, invalidOption } from '../../common/validate.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { ExtensionFactory } from '../../common/extension-registry.js';
import { instanceAddress, matchesQuery, type LoadSnapshot, type ServiceInstance, type ServiceQuery } from '../instance.js';
import { RegistryInputGuard } from '../input-guard.js';
import { checkInstance, checkLoad, RECORD_LIMITS } from '../record-check.js';
import type { InstancesListener, Registry, Subscription } from '../registry.js';
import { ownedFile, touchOwned, writeAtomically, type OwnedFile } from './own-files.js';
import { defaultFileRegistryDir, ensurePrivateFolder } from './private-folder.js';
import { readRegularFile } from './safe-read.js';
import { monotonicNow } from '../../common/clock.js';
import { HeartbeatAges } from './heartbeat-ages.js';

export { defaultFileRegistryDir } from './private-folder.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'file';

/** The URL of the embedded default registry. */
export function defaultRegistryUrl(): string {
  return `file://${defaultFileRegistryDir()}`;
}

/**
 * `file://DIR` (absolute, or relative to the process's cwd; empty for the default folder; `~`
 * is refused, not expanded), or
 * `{ type: 'file', options: { url | dir, heartbeatMs, ttlMs, pollMs } }`.
 */
export const createFileRegistry: ExtensionFactory<Registry> = (options) => {
  checkKnownKeys('file registry options', options, ['url', 'dir', 'heartbeatMs', 'ttlMs', 'pollMs']);
  let dir = options['dir'];
  if (options['url'] !== undefined) {
    if (typeof options['url'] !== 'string' || !options['url'].startsWith('file://')) throw invalidOption('registry', options['url'], 'file://DIR');
    dir = options['url'].slice('file://'.length);
  }
  if (dir !== undefined && typeof dir !== 'string') throw invalidOption('file registry dir', dir, 'a folder path');
  // Only a shell expands `~`: taken as it is, `file://~/reg` would make a folder named `~` in the cwd.
  if (typeof dir === 'string' && dir.startsWith('~')) {
    throw invalidOption(
      'file registry dir',
      dir,
      `a folder path; ~ is not expanded: write the absolute path, e.g. file://${path.join(homedir(), dir.slice(1))}`,
    );
  }
  const heartbeatMs = checkInt('file registry heartbeatMs', options['heartbeatMs'], 50, 60_000, 1000);
  return new FileRegistry({
    dir: dir ? path.resolve(dir) : defaultFileRegistryDir(),
    heartbeatMs,
    ttlMs: checkInt('file registry ttlMs', options['ttlMs'], 2 * heartbeatMs, 600_000, Math.max(3000, 3 * heartbeatMs)),
    pollMs: checkInt('file registry pollMs', options['pollMs'], 20, 60_000, 500),
  });
};

/** Settings of a {@link FileRegistry}. */
export interface FileRegistrySettings {
  readonly dir: string;
  /** How often a provider refreshes its files. */
  readonly heartbeatMs: number;
  /** A record not refreshed for this long is treated as dead (its process is gone or hung). */
  readonly ttlMs: number;
  /** How often a consumer rereads the folder. */
  readonly pollMs: number;
}

interface Subscriber {
  readonly query: ServiceQuery;
  readonly listener: InstancesListener;
  signature: string;
}

/**
 * A registry for one host and many processes, with no server: the embedded default.
 *
 * Layout: `DIR/services/{service}/{version}@{group}@{host:port}.json` holds a record, and
 * `DIR/load/{host:port}.json` a provider's load (segments URI-encoded, `_` for empty). Files are
 * written whole to a temporary name and renamed, so a reader never sees half a record. A
 * provider refreshes its files' modification time every `heartbeatMs`, never through a link
 * (rewriting any that vanished or were replaced, own-files.ts); a consumer rereads the
 * service's folder every `pollMs`, ignores records whose heartbeat is older than `ttlMs` (a
 * SIGKILLed provider drops out after that), and deletes records whose heartbeat stopped more
 * than 10 x `ttlMs` ago so a crashed process leaves nothing behind for long. A heartbeat's age
 * is measured on the reader's monotonic clock from when it saw the modification time change
 * (heartbeat-ages.ts): a step of the wall clock neither hides nor deletes live records.
 */
export class FileRegistry implements Registry {
  readonly name = 'file';
  readonly settings: FileRegistrySettings;
  /** Files this provider owns: path -> what it wrote there. */
  readonly #owned = new Map<string, OwnedFile>();
  /** The write under way of each file being written (see #write). */
  readonly #writes = new Map<string, Promise<void>>();
  readonly #subscribers = new Set<Subscriber>();
  #heartbeat: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #polling = false;
  #closed = false;
  /** The folder checked to be private (see private-folder.ts); unset again when the check failed. */
  #checked: Promise<unknown> | undefined;
  #checkedAt = 0;
  readonly #guard: RegistryInputGuard;
  readonly #ages: HeartbeatAges;

  constructor(settings: FileRegistrySettings) {
    this.settings = settings;
    this.#ages = new HeartbeatAges(settings.ttlMs);
    this.#guard = new RegistryInputGuard(`file://${settings.dir}`);
  }

  /** Files and folder entries read and refused (not regular files, malformed, out of range, too large). */
  get rejectedEntries(): number {
    return this.#guard.dropped;
  }

  async register(instance: ServiceInstance): Promise<void> {
    const { load: _load, ...record } = instance;
    const checked = checkInstance(record);
    if (typeof checked === 'string')
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `file registry ${this.settings.dir}: cannot register ${instance.service}: ${checked}`);
    await this.#own(this.#recordPath(instance), JSON.stringify(record));
  }

  async unregister(instance: ServiceInstance): Promise<void> {
    const file = this.#recordPath(instance);
    this.#owned.delete(file);
    await rm(file, { force: true });
  }

  async reportLoad(address: string, load: LoadSnapshot): Promise<void> {
    await this.#own(path.join(this.settings.dir, 'load', `${segment(address)}.json`), JSON.stringify(load));
  }

  async subscribe(query: ServiceQuery, listener: InstancesListener): Promise<Subscription> {
    const subscriber: Subscriber = { query, listener, signature: '' };
    let instances: ServiceInstance[];
    try {
      // A folder no provider has made yet lists nobody; polling picks providers up once it exists.
      instances = this.#unchanged(await this.#readChecked(() => this.#read(query))) ?? [];
    } catch (error) {
      if (error instanceof RpcError) throw error;
      throw new RpcError(RpcCode.UNAVAILABLE, `file registry ${this.settings.dir} cannot be read: ${(error as Error).message}`, { cause: error });
    }
    subscriber.signature = JSON.stringify(instances);
    this.#subscribers.add(subscriber);
    listener(instances);
    this.#startPolling();
    return {
      close: () => {
        this.#subscribers.delete(subscriber);
      },
    };
  }

  async services(): Promise<string[]> {
    return this.#unchanged(await this.#readChecked(() => this.#services())) ?? [];
  }

  async #services(): Promise<string[]> {
    let folders: string[];
    try {
      folders = await readdir(path.join(this.settings.dir, 'services'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new RpcError(RpcCode.UNAVAILABLE, `file registry ${this.settings.dir} cannot be read: ${(error as Error).message}`, { cause: error });
    }
    const names: string[] = [];
    for (const folder of folders) {
      const service = unsegment(folder);
      // A folder whose records all went stale (their providers died) does not count.
      if (service !== undefined && (await this.#read({ service })).length > 0) names.push(service);
    }
    return names.sort();
  }

  /**
   * Runs `read` between two checks that the folder is private (private-folder.ts), made fresh
   * each time, never remembered: a folder deleted while this process runs can be recreated by
   * another user, world-writable, or replaced by a symbolic link, and what was read from it
   * is trusted only if the same private folder was there before and after. Resolves
   * 'missing' when there is no folder (nothing is read and nothing is created: a reader given
   * a mistyped path leaves nothing behind), 'changed' when it was replaced or made unsafe
   * while being read; rejects (UNAVAILABLE, with the reason) when it is not safe to read.
   */
  async #readChecked<T>(read: () => Promise<T>): Promise<T | 'missing' | 'changed'> {
    const before = await ensurePrivateFolder(this.settings.dir, false);
    if (before === undefined) return 'missing';
    const result = await read();
    const after = await ensurePrivateFolder(this.settings.dir, false).catch(() => undefined);
    return after?.ino === before.ino && after.dev === before.dev ? result : 'changed';
  }

  /** A first read's result: undefined for a missing folder; UNAVAILABLE when it changed as it was read. */
  #unchanged<T>(result: T | 'missing' | 'changed'): T | undefined {
    if (result === 'changed') throw new RpcError(RpcCode.UNAVAILABLE, `file registry ${this.settings.dir} was replaced while it was read; try again`);
    return result === 'missing' ? undefined : result;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#poll);
    this.#subscribers.clear();
    const owned = [...this.#owned.keys()];
    this.#owned.clear();
    // A write under way would put its file back after the removal below.
    await Promise.allSettled([...this.#writes.values()]);
    await Promise.all(owned.map((file) => rm(file, { force: true })));
  }

  /**
   * Checks the folder (creating it if missing) before a provider writes to it, again at most a
   * poll interval after the last check: a folder deleted while this process runs can be
   * recreated by another user, world-writable, or replaced by a symbolic link, and a check made
   * once at start would go on trusting it. A failed check is retried on the next write.
   */
  #privateFolder(): Promise<unknown> {
    const now = monotonicNow();
    if (this.#checked === undefined || now - this.#checkedAt >= this.settings.pollMs) {
      this.#checkedAt = now;
      const checked = ensurePrivateFolder(this.settings.dir, true).catch((error: unknown) => {
        if (this.#checked === checked) this.#checked = undefined;
        throw error;
      });
      this.#checked = checked;
    }
    return this.#checked;
  }

  #recordPath(instance: Pick<ServiceInstance, 'service' | 'version' | 'group' | 'host' | 'port'>): string {
    const name = `${segment(instance.version)}@${segment(instance.group)}@${segment(instanceAddress(instance))}.json`;
    return path.join(this.settings.dir, 'services', segment(instance.service), name);
  }

  async #own(file: string, content: string): Promise<void> {
    if (this.#closed) throw new RpcError(RpcCode.UNAVAILABLE, `file registry ${this.settings.dir} is closed`);
    await this.#privateFolder();
    const owned = ownedFile(content);
    this.#owned.set(file, owned);
    await this.#write(file, owned);
    this.#heartbeat ??= setInterval(() => void this.#refresh(), this.settings.heartbeatMs);
    this.#heartbeat.unref();
  }

  /**
   * Writes `owned` to `file` after any write of that file already under way, and records the
   * inode written. One at a time per file: two renames racing would leave the file holding one
   * write's content while the other's inode is recorded, and the next heartbeat would call the
   * provider's own file a replacement.
   */
  #write(file: string, owned: OwnedFile): Promise<void> {
    const previous = this.#writes.get(file) ?? Promise.resolve();
    const write = previous
      .catch(() => {})
      .then(async () => {
        owned.ino = undefined;
        try {
          owned.ino = await writeAtomically(this.settings.dir, file, owned.content);
        } catch (error) {
          // Node's `ENOSPC: no space left on device, write` names neither the registry nor the
          // file: an operator reading it at start-up could not tell which disk to look at.
          throw new RpcError(
            RpcCode.UNAVAILABLE,
            `file registry ${this.settings.dir}: cannot write ${path.relative(this.settings.dir, file)}: ${writeProblem(error)}`,
            { cause: error },
          );
        }
      });
    this.#writes.set(file, write);
    const forget = (): void => {
      if (this.#writes.get(file) === write) this.#writes.delete(file);
    };
    write.then(forget, forget);
    return write;
  }

  /** Heartbeat: bump every owned file's mtime; rewrite any that someone removed or replaced. */
  async #refresh(): Promise<void> {
    const now = new Date();
    await Promise.all([...this.#owned].map(([file, owned]) => this.#keep(file, owned, now)));
  }

  /**
   * Touches one owned file if it is still the one written; otherwise writes it again as a
   * regular file (never through what replaced it) and reports the replacement.
   */
  async #keep(file: string, owned: OwnedFile, now: Date): Promise<void> {
    // Not written yet: the write in progress is this provider's own, not a replacement.
    if (owned.ino === undefined) return;
    const found = await touchOwned(this.settings.dir, file, owned, now).catch((error: unknown) => ({ replaced: `an error (${(error as Error).message})` }));
    if (found === 'touched' || this.#owned.get(file) !== owned || this.#closed) return;
    try {
      await this.#write(file, owned);
      if (found !== 'missing') this.#guard.drop(file, `this provider's file was replaced by ${found.replaced}; written again as a regular file`);
    } catch (error) {
      this.#guard.drop(file, `this provider's file cannot be written again (${(error as Error).message}); it stays unannounced until it can`);
    }
  }

  #startPolling(): void {
    if (this.#poll !== undefined || this.#closed) return;
    this.#poll = setTimeout(() => {
      this.#poll = undefined;
      void this.#pollOnce()
        // A poll that fails keeps the views as they are; the next one tries again.
        .catch(() => {})
        .finally(() => {
          if (this.#subscribers.size > 0) this.#startPolling();
        });
    }, this.settings.pollMs);
    this.#poll.unref();
  }

  async #pollOnce(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const subscribers = [...this.#subscribers];
      // A folder that cannot be read, or is not provably this user's, keeps the last lists (an
      // outage never empties a view; a check that fails rejects and the poll is skipped); a
      // folder that is gone lists nobody.
      const lists = await this.#readChecked(async () => {
        const read: (ServiceInstance[] | undefined)[] = [];
        for (const subscriber of subscribers) read.push(await this.#read(subscriber.query).catch(() => undefined));
        return read;
      });
      if (lists === 'changed') return;
      subscribers.forEach((subscriber, index) => {
        const instances = lists === 'missing' ? [] : lists[index];
        if (instances === undefined || !this.#subscribers.has(subscriber)) return;
        let signature: string;
        try {
          signature = JSON.stringify(instances);
        } catch {
          return;
        }
        if (signature !== subscriber.signature) {
          subscriber.signature = signature;
          subscriber.listener(instances);
        }
      });
    } finally {
      this.#polling = false;
    }
  }

  /** The live records matching `query`, with their load; stale ones skipped (and old ones removed). */
  async #read(query: ServiceQuery): Promise<ServiceInstance[]> {
    const folder = path.join(this.settings.dir, 'services', segment(query.service));
    let names: string[];
    try {
      // A folder swapped for a link is not read through (the view keeps what it had); the
      // providers' heartbeats put a real folder back.
      for (const inside of [path.dirname(folder), folder]) {
        if ((await lstat(inside)).isSymbolicLink()) {
          this.#guard.drop(inside, 'is a symbolic link, not a folder; not read');
          throw new Error(`${inside} is a symbolic link, not a folder`);
        }
      }
      names = await readdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const now = monotonicNow();
    const instances: ServiceInstance[] = [];
    // Only names a provider writes (version@group@address.json) are read: thousands of other
    // files planted in the folder cost nothing and cannot push the real records past the cap.
    const records = names.filter((entry) => RECORD_NAME.test(entry)).sort();
    let reads = 0;
    for (const name of records) {
      // The cap counts records served, not files read, so refused and stale ones never hide
      // good ones; reads are bounded too.
      if (instances.length >= MAX_RECORDS || reads >= MAX_RECORD_READS) {
        this.#guard.drop(folder, `${records.length} records, only ${reads} were read (${instances.length} served)`);
        break;
      }
      reads++;
      const instance = (await this.#readFresh(path.join(folder, name), now, RECORD_LIMITS.recordBytes, checkInstance))?.value;
      if (instance === undefined || !matchesQuery(query, instance)) continue;
      const load = await this.#readFresh(
        path.join(this.settings.dir, 'load', `${segment(instanceAddress(instance))}.json`),
        now,
        RECORD_LIMITS.loadBytes,
        checkLoad,
      );
      // Arrived when its file last changed (a report or a heartbeat), not when this poll read it:
      // a provider that stopped refreshing it must not look freshly measured at every poll.
      instances.push(load === undefined ? instance : { ...instance, load: { ...load.value, receivedAt: now - load.age } });
    }
    return instances;
  }

  /**
   * The checked content of `file` and its heartbeat's age if it is a regular file refreshed
   * within the TTL; undefined when it is missing, stale, or refused (dropped and reported by the
   * guard).
   */
  async #readFresh<T>(file: string, now: number, maxBytes: number, check: (value: unknown) => T | string): Promise<{ value: T; age: number } | undefined> {
    const read = await readRegularFile(file, maxBytes);
    if (read.kind === 'refused') return this.#guard.drop(file, read.reason);
    if (read.kind === 'missing') return void this.#ages.forget(file);
    const age = this.#ages.age(file, read.mtimeMs, now);
    if (age > 10 * this.settings.ttlMs && !this.#owned.has(file)) {
      this.#ages.forget(file);
      await rm(file, { force: true }).catch(() => {});
    }
    if (age > this.settings.ttlMs) return undefined;
    const value = this.#guard.read(file, read.text, maxBytes, check);
    return value === undefined ? undefined : { value, age };
  }
}

function segment(value: string): string {
  return value === '' ? '_' : encodeURIComponent(value).replaceAll('_', '%5F');
}

/** The name a {@link segment} stands for; undefined for a name no segment produces. */
function unsegment(folder: string): string | undefined {
  if (folder === '_') return '';
  try {
    return decodeURIComponent(folder);
  } catch {
    return undefined;
  }
}

/** Records served per service folder and poll. */
const MAX_RECORDS = 10_000;
/** Record files read per service folder and poll: a bound on what a flood of files can cost. */
const MAX_RECORD_READS = 2 * MAX_RECORDS;
/** The name of a record file, as a provider writes it: `version@group@address.json`, each part encoded. */
const RECORD_NAME = /^[^@/]+@[^@/]+@[^@/]+\.json$/;

/** A failed write in words: the disk full, the file system read-only, no permission — else the error's own message. */
function writeProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `the disk is full (${code})`;
  if (code === 'EROFS') return 'the file system is read-only (EROFS)';
  if (code === 'EACCES' || code === 'EPERM') return `this user may not write there (${code})`;
  return (error as Error | undefined)?.message ?? String(error);
}
