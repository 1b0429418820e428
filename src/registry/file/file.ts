import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { checkInt, checkKnownKeys, invalidOption } from '../../common/validate.js';
import { RpcCode, RpcError } from '../../errors/errors.js';
import type { ExtensionFactory } from '../../spi/extension-registry.js';
import { instanceAddress, matchesQuery, parseInstance, parseLoad, type LoadSnapshot, type ServiceInstance, type ServiceQuery } from '../instance.js';
import type { InstancesListener, Registry, Subscription } from '../registry.js';

/** The name (and URL scheme) this registry is registered under. */
export const TYPE_NAME = 'file';

/** The folder `file://` (no path) uses: one per user, in the OS temp folder. */
export function defaultFileRegistryDir(): string {
  return path.join(tmpdir(), `shuttle-registry-${safeUser()}`);
}

/** The URL of the embedded default registry. */
export function defaultRegistryUrl(): string {
  return `file://${defaultFileRegistryDir()}`;
}

/**
 * `file://DIR` (absolute, or relative to the process's cwd; empty for the default folder), or
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
 * provider refreshes its files' modification time every `heartbeatMs` (rewriting any that
 * vanished); a consumer rereads the service's folder every `pollMs`, ignores records older
 * than `ttlMs` (a SIGKILLed provider drops out after that), and deletes records older than
 * 10 x `ttlMs` so a crashed process leaves nothing behind for long.
 */
export class FileRegistry implements Registry {
  readonly name = 'file';
  readonly settings: FileRegistrySettings;
  /** Files this provider owns: path -> content. */
  readonly #owned = new Map<string, string>();
  readonly #subscribers = new Set<Subscriber>();
  #heartbeat: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #polling = false;
  #closed = false;

  constructor(settings: FileRegistrySettings) {
    this.settings = settings;
  }

  async register(instance: ServiceInstance): Promise<void> {
    const { load: _load, ...record } = instance;
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
      instances = await this.#read(query);
    } catch (error) {
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#poll);
    this.#subscribers.clear();
    const owned = [...this.#owned.keys()];
    this.#owned.clear();
    await Promise.all(owned.map((file) => rm(file, { force: true })));
  }

  #recordPath(instance: Pick<ServiceInstance, 'service' | 'version' | 'group' | 'host' | 'port'>): string {
    const name = `${segment(instance.version)}@${segment(instance.group)}@${segment(instanceAddress(instance))}.json`;
    return path.join(this.settings.dir, 'services', segment(instance.service), name);
  }

  async #own(file: string, content: string): Promise<void> {
    if (this.#closed) throw new RpcError(RpcCode.UNAVAILABLE, `file registry ${this.settings.dir} is closed`);
    this.#owned.set(file, content);
    await writeAtomically(file, content);
    this.#heartbeat ??= setInterval(() => void this.#refresh(), this.settings.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Heartbeat: bump every owned file's mtime; rewrite any that someone removed. */
  async #refresh(): Promise<void> {
    const now = new Date();
    await Promise.all(
      [...this.#owned].map(([file, content]) =>
        utimes(file, now, now).catch(() => (this.#owned.has(file) ? writeAtomically(file, content).catch(() => {}) : undefined)),
      ),
    );
  }

  #startPolling(): void {
    if (this.#poll !== undefined || this.#closed) return;
    this.#poll = setTimeout(() => {
      this.#poll = undefined;
      void this.#pollOnce().finally(() => {
        if (this.#subscribers.size > 0) this.#startPolling();
      });
    }, this.settings.pollMs);
    this.#poll.unref();
  }

  async #pollOnce(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      for (const subscriber of [...this.#subscribers]) {
        // A folder that cannot be read keeps the last list (an outage never empties a view).
        const instances = await this.#read(subscriber.query).catch(() => undefined);
        if (instances === undefined || !this.#subscribers.has(subscriber)) continue;
        const signature = JSON.stringify(instances);
        if (signature !== subscriber.signature) {
          subscriber.signature = signature;
          subscriber.listener(instances);
        }
      }
    } finally {
      this.#polling = false;
    }
  }

  /** The live records matching `query`, with their load; stale ones skipped (and old ones removed). */
  async #read(query: ServiceQuery): Promise<ServiceInstance[]> {
    const folder = path.join(this.settings.dir, 'services', segment(query.service));
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const now = Date.now();
    const instances: ServiceInstance[] = [];
    for (const name of names.filter((entry) => entry.endsWith('.json')).sort()) {
      const record = await this.#readFresh(path.join(folder, name), now);
      const instance = parseInstance(record);
      if (instance === undefined || !matchesQuery(query, instance)) continue;
      const load = parseLoad(await this.#readFresh(path.join(this.settings.dir, 'load', `${segment(instanceAddress(instance))}.json`), now));
      instances.push(load === undefined ? instance : { ...instance, load: { ...load, receivedAt: now } });
    }
    return instances;
  }

  /** The parsed content of `file` if it was refreshed within the TTL; undefined otherwise. */
  async #readFresh(file: string, now: number): Promise<unknown> {
    try {
      const info = await stat(file);
      const age = now - info.mtimeMs;
      if (age > 10 * this.settings.ttlMs && !this.#owned.has(file)) await rm(file, { force: true });
      if (age > this.settings.ttlMs) return undefined;
      return JSON.parse(await readFile(file, 'utf8')) as unknown;
    } catch {
      return undefined;
    }
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

let counter = 0;
async function writeAtomically(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${++counter}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, file);
}

function safeUser(): string {
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_');
  } catch {
    return String(process.getuid?.() ?? 'user');
  }
}
