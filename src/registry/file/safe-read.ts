import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';

/** What {@link readRegularFile} found. */
export type FileRead =
  | { readonly kind: 'file'; readonly text: string; readonly mtimeMs: number }
  | { readonly kind: 'missing' }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * Reads `file` only if it is a regular file of at most `maxBytes`, without ever waiting on it.
 *
 * Why each step: a FIFO, socket or device planted in the folder would make a plain `open`
 * block a libuv thread-pool thread until a writer shows up — four of them freeze every `fs`,
 * `dns.lookup` and `crypto` call of the process. So the entry is `lstat`ed first (a symlink is
 * not followed, anything but a regular file is refused), then opened with `O_NOFOLLOW`
 * (a symlink swapped in after the lstat fails) and `O_NONBLOCK` (a FIFO swapped in opens at
 * once instead of waiting), then checked again with `fstat` on the descriptor actually opened,
 * and its size is capped before a byte is read.
 */
export async function readRegularFile(file: string, maxBytes: number): Promise<FileRead> {
  let info;
  try {
    info = await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'refused', reason: `cannot be examined (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
  if (!info.isFile()) return { kind: 'refused', reason: `is a ${kindOf(info)}, not a regular file` };
  if (info.size > maxBytes) return { kind: 'refused', reason: `${info.size} bytes, at most ${maxBytes} allowed` };
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'refused', reason: `cannot be opened (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) return { kind: 'refused', reason: `is a ${kindOf(opened)}, not a regular file` };
    if (opened.size > maxBytes) return { kind: 'refused', reason: `${opened.size} bytes, at most ${maxBytes} allowed` };
    // One byte more than allowed: a file that grew since the fstat is caught, not truncated.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) return { kind: 'refused', reason: `more than ${maxBytes} bytes` };
    }
    return { kind: 'file', text: buffer.subarray(0, length).toString('utf8'), mtimeMs: opened.mtimeMs };
  } finally {
    await handle.close().catch(() => {});
  }
}

function kindOf(info: { isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (info.isSymbolicLink()) return 'symbolic link';
  if (info.isFIFO()) return 'FIFO';
  if (info.isSocket()) return 'socket';
  if (info.isDirectory()) return 'directory';
  return 'device or special file';
}
