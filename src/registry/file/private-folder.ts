import { lstat, mkdir } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { RpcCode, RpcError } from '../../errors/errors.js';

/**
 * The folder `file://` (no path) uses, one per user: `$XDG_RUNTIME_DIR/shuttle-registry` when
 * that is set (a per-user folder, mode 0700, that the system empties at logout), else
 * `shuttle-registry-UID` in the OS temp folder. The temp-folder name is predictable, which is
 * why {@link ensurePrivateFolder} checks its owner and mode before anything is read from it.
 */
export function defaultFileRegistryDir(): string {
  const runtime = process.env['XDG_RUNTIME_DIR'];
  if (runtime !== undefined && path.isAbsolute(runtime)) return path.join(runtime, 'shuttle-registry');
  return path.join(tmpdir(), `shuttle-registry-${userId()}`);
}

/**
 * Makes sure `dir` is a folder only this user can write to: creates it (mode 0700, parents
 * included) when missing, and refuses — UNAVAILABLE with the reason — a folder that is a
 * symbolic link, is owned by another user, or is writable by its group or by everyone.
 *
 * Why: whoever can write to the folder can plant a record; a consumer would then send its
 * calls, and its auth token, to the planter's address. A folder in a shared temp directory can
 * be created first by any local user, so it is trusted only once it is provably ours.
 */
export async function ensurePrivateFolder(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw refuse(dir, `cannot be created (${error.code ?? error.message})`);
  });
  let info;
  try {
    info = await lstat(dir);
  } catch (error) {
    throw refuse(dir, `cannot be examined (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (info.isSymbolicLink()) throw refuse(dir, 'is a symbolic link; use the folder it points to');
  if (!info.isDirectory()) throw refuse(dir, 'is not a folder');
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) throw refuse(dir, `is owned by uid ${info.uid}, not by this user (uid ${uid}); another user may have created it`);
  if ((info.mode & 0o022) !== 0) {
    throw refuse(dir, `is writable by its group or by everyone (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); make it private with chmod 700`);
  }
}

function refuse(dir: string, reason: string): RpcError {
  return new RpcError(RpcCode.UNAVAILABLE, `file registry ${dir} is not safe to use: it ${reason}`);
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
