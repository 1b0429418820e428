import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A temporary folder with the given files (path -> content); removed by `remove()`. */
export async function tempDir(files: Record<string, string> = {}): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shuttle-test-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Points this process's default temporary folder at a fresh one (TMPDIR set, XDG_RUNTIME_DIR
 * unset), so that the file registry's default folder is made there; `restore()` puts both
 * variables back and removes the folder.
 */
export async function isolatedTmpdir(): Promise<{ base: string; restore(): Promise<void> }> {
  const base = await mkdtemp(path.join(tmpdir(), 'shuttle-tmpdir-'));
  const saved = { TMPDIR: process.env['TMPDIR'], XDG_RUNTIME_DIR: process.env['XDG_RUNTIME_DIR'] };
  process.env['TMPDIR'] = base;
  delete process.env['XDG_RUNTIME_DIR'];
  return {
    base,
    restore: async () => {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      await rm(base, { recursive: true, force: true });
    },
  };
}
