import { lstatSync, type Stats } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { RpcCode, RpcError } from '../../errors/errors.js';

/**
 * The folder `file://` (no path) uses, one per user: `$XDG_RUNTIME_DIR/shuttle-registry` when
 * that is set (a per-user folder, mode 0700, that the system empties at logout), else
 * `shuttle-registry-UID` in the OS temp folder. The temp-folder name is predictable, which is
 * why {@link ensurePrivateFolder} checks its owner and mode before anything is read from it.
 *
 * One exception: when `shuttle-registry-USERNAME` exists in the OS temp folder and is private
 * to this user, that folder is the default. Processes that name the default folder by the user
 * name are still running while a fleet is upgraded one process at a time, and a default that
 * differed from theirs would split the fleet in two, each half finding no provider of the other.
 */
export function defaultFileRegistryDir(): string {
  const byName = folderNamedByUser();
  if (byName !== undefined) return byName;
  const runtime = process.env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && path.isAbsolute(runtime)) return path.join(runtime, 'shuttle-registry');
  return path.join(tmpdir(), `shuttle-registry-${userId()}`);
}

/**
 * Makes sure `dir` is a folder only this user can write to, and refuses — UNAVAILABLE with the
 * reason — a folder that is a symbolic link, is owned by another user, or is writable by its
 * group or by everyone. A missing folder is created (mode 0700, parents included) when `create`
 * is set — a provider about to write its record — and otherwise left alone: a reader (a consumer,
 * `shuttle ls`) given a mistyped path must not leave a folder behind. Resolves the folder's
 * `lstat` once it is private (its inode tells a reader whether it was replaced meanwhile), or
 * undefined when it is missing and was not created.
 *
 * Why: whoever can write to the folder can plant a record; a consumer would then send its
 * calls, and its auth token, to the planter's address. A folder in a shared temp directory can
 * be created first by any local user, so it is trusted only once it is provably ours.
 */
export async function ensurePrivateFolder(dir: string, create = true): Promise<Stats | undefined> {
  let info = await examine(dir);
  if (info === undefined) {
    if (!create) return undefined;
    await makeFolders(dir).catch((error: NodeJS.ErrnoException) => {
      throw refuse(dir, `cannot be created (${error.code ?? error.message})`);
    });
    info = await examine(dir);
    if (info === undefined) throw refuse(dir, 'vanished as it was created');
  }
  if (info.isSymbolicLink()) throw refuse(dir, 'is a symbolic link; use the folder it points to');
  if (!info.isDirectory()) throw refuse(dir, 'is not a folder');
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) throw refuse(dir, `is owned by uid ${info.uid}, not by this user (uid ${uid}); another user may have created it`);
  if ((info.mode & 0o022) !== 0) {
    throw refuse(dir, `is writable by its group or by everyone (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); make it private with chmod 700`);
  }
  return info;
}

/** `lstat` of `dir`; undefined when nothing is there. */
async function examine(dir: string): Promise<Stats | undefined> {
  try {
    return await lstat(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refuse(dir, `cannot be examined (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/**
 * `mkdir -p` with mode 0700, one level at a time from the deepest folder that exists.
 * Why not `mkdir(dir, { recursive: true })`: on Node 20 it never settles for a path under
 * `/proc` (it retries the ENOENT it gets there forever), and a registry path is user input;
 * made level by level, every failure comes back as an error naming its code.
 */
export async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let folder = path.resolve(dir); ; folder = path.dirname(folder)) {
    try {
      await lstat(folder);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    missing.push(folder);
    if (path.dirname(folder) === folder) break;
  }
  for (const folder of missing.reverse()) {
    await mkdir(folder, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      // Another process (a second provider starting) may make the same folder at once.
      if (error.code !== 'EEXIST') throw error;
    });
  }
}

function refuse(dir: string, reason: string): RpcError {
  return new RpcError(RpcCode.UNAVAILABLE, `file registry ${dir} is not safe to use: it ${reason}`);
}

/**
 * `shuttle-registry-USERNAME` in the OS temp folder when it is a folder (not a link) owned by
 * this user and writable by no one else — the checks {@link ensurePrivateFolder} makes on every
 * use — else undefined. Looked at once, when a registry is made: a folder someone else made, or
 * left open to others, is never chosen.
 */
function folderNamedByUser(): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  let name: string;
  try {
    name = userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_');
  } catch {
    return undefined;
  }
  if (name === String(uid)) return undefined;
  const dir = path.join(tmpdir(), `shuttle-registry-${name}`);
  let info: Stats;
  try {
    info = lstatSync(dir);
  } catch {
    return undefined;
  }
  return info.isDirectory() && info.uid === uid && (info.mode & 0o022) === 0 ? dir : undefined;
}

function userId(): string {
  const uid = process.getuid?.();
  if (uid !== undefined) return String(uid);
  try {
    return userInfo().username.replace(/[^A-Za-z0-9_-]/g, '_');
  } catch {
    return 'user';
  }
}
