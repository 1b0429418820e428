import { constants } from 'node:fs';
import { lstat, open, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { makeFolders } from './private-folder.js';

/** A file a provider wrote: what it holds, and the inode it was written to (undefined until written). */
export interface OwnedFile {
  readonly content: string;
  readonly bytes: number;
  ino: number | undefined;
}

/** An {@link OwnedFile} for `content`, not yet written. */
export function ownedFile(content: string): OwnedFile {
  return { content, bytes: Buffer.byteLength(content), ino: undefined };
}

/**
 * What the heartbeat found at an owned file's path: `touched` (its modification time is now
 * `time`), `missing`, or why what is there is not the file this provider wrote.
 */
export type Touch = 'touched' | 'missing' | { readonly replaced: string };

/**
 * Refreshes the modification time of `file` only if it is still the regular file this provider
 * wrote (same inode, same size), never following a symbolic link.
 *
 * Why not `utimes(path)`: it follows links, so a record replaced by a link would have the
 * link's target touched — any file this user can write — and a dead record kept alive. The
 * path is opened with `O_NOFOLLOW` (a link fails with ELOOP) and `O_NONBLOCK` (a FIFO opens at
 * once), the descriptor is checked with `fstat`, and the time is set on that descriptor, so
 * only the inode that was checked is touched. The folders between `root` and the file must be
 * real folders too: `O_NOFOLLOW` guards only the last part of a path.
 */
export async function touchOwned(root: string, file: string, owned: OwnedFile, time: Date): Promise<Touch> {
  const folders = await linkedFolder(root, file);
  if (folders !== undefined) return { replaced: folders };
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    return { replaced: code === 'ELOOP' ? 'a symbolic link' : `something that cannot be opened (${code ?? (error as Error).message})` };
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { replaced: info.isDirectory() ? 'a folder' : info.isFIFO() ? 'a FIFO' : 'a special file' };
    if (info.ino !== owned.ino || info.size !== owned.bytes) return { replaced: 'another file' };
    await handle.utimes(time, time);
    return 'touched';
  } finally {
    await handle.close().catch(() => {});
  }
}

let counter = 0;

/**
 * Writes `content` to `file` whole (a temporary file renamed over it, so a reader never sees
 * half of it) and returns the inode written. Never writes through a link: the temporary file
 * is created exclusively (`wx`: a link or file planted at its name fails the write instead of
 * being followed), and `rename` replaces whatever is at `file` — link, FIFO or file — rather
 * than writing into it. A folder on the way that is a symbolic link is removed (the link,
 * never what it points to) and made again; a folder at `file` itself is removed if it is
 * empty, otherwise the write fails naming it.
 */
export async function writeAtomically(root: string, file: string, content: string): Promise<number> {
  for (const folder of foldersBetween(root, file)) {
    const info = await lstat(folder).catch(() => undefined);
    if (info === undefined) break;
    if (info.isSymbolicLink()) await unlink(folder).catch(() => {});
  }
  await makeFolders(path.dirname(file));
  const linked = await linkedFolder(root, file);
  if (linked !== undefined) throw new Error(linked);
  const temporary = `${file}.${process.pid}.${++counter}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  let ino: number;
  try {
    await handle.writeFile(content);
    ino = (await handle.stat()).ino;
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A folder planted where the file belongs: rename cannot replace it. An empty one is
    // removed; a full one is not emptied on this user's behalf.
    const cleared =
      (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') &&
      (await rmdir(file).then(
        () => true,
        () => false,
      ));
    if (!cleared) {
      await rm(temporary, { force: true });
      throw code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' ? new Error('a folder that is not empty is in the way') : error;
    }
    await rename(temporary, file);
  }
  return ino;
}

/**
 * The first folder between `root` (excluded) and `file` that is not a real folder, described;
 * undefined when none. Checked from the top down: below a link, lstat would already look
 * through it.
 */
async function linkedFolder(root: string, file: string): Promise<string | undefined> {
  for (const folder of foldersBetween(root, file)) {
    const info = await lstat(folder).catch(() => undefined);
    if (info === undefined) return undefined; // missing: made again when the file is rewritten
    if (info.isSymbolicLink()) return `a symbolic link in place of the folder ${folder}`;
    if (!info.isDirectory()) return `something that is not a folder in place of the folder ${folder}`;
  }
  return undefined;
}

/** The folders from just under `root` down to `file`'s own, top first. */
function foldersBetween(root: string, file: string): string[] {
  const relative = path.relative(root, path.dirname(file));
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return [];
  const parts = relative.split(path.sep);
  return parts.map((_, i) => path.join(root, ...parts.slice(0, i + 1)));
}
