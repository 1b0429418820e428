import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkPackageAt } from '../../scripts/check-package.mjs';

/*
 * The package as a newcomer installs it (scripts/check-package.mjs over `npm pack --dry-run`,
 * offline): every exports entry shipped, importable and requirable; the published types name
 * no package a user's install lacks types for; source maps find their sources; no test or
 * bench file ships. The built dist/ is what is checked.
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { name: string; exports: Record<string, unknown> };
const entries = Object.keys(pkg.exports)
  .filter((entry) => !entry.endsWith('.json'))
  .map((entry) => (entry === '.' ? pkg.name : `${pkg.name}/${entry.slice(2)}`));

describe('the published package', () => {
  it('ships what a fresh project needs, and nothing of the tests', { timeout: 60_000 }, () => {
    expect(checkPackageAt(root)).toEqual([]);
  });

  it.each(entries)('%s loads by import and by require (Node >= 20.19 requires ES modules)', async (entry) => {
    const script = `
      const imported = await import(${JSON.stringify(entry)});
      const required = (await import('node:module')).createRequire(${JSON.stringify(`${root}package.json`)})(${JSON.stringify(entry)});
      console.log(JSON.stringify({ imported: Object.keys(imported).length, same: Object.keys(imported).every((key) => imported[key] === required[key]) }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 30_000 });
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as { imported: number; same: boolean };
    expect(result.imported).toBeGreaterThan(0);
    expect(result.same).toBe(true);
  });

  it('a deep import outside the exports map fails, by import and by require', async () => {
    const script = `
      const errors = [];
      try { await import('${pkg.name}/dist/index.js'); } catch (error) { errors.push(error.code); }
      try { (await import('node:module')).createRequire(${JSON.stringify(`${root}package.json`)})('${pkg.name}/dist/serializer/msgpack.js'); } catch (error) { errors.push(error.code); }
      console.log(JSON.stringify(errors));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 30_000 });
    expect(JSON.parse(stdout.trim())).toEqual(['ERR_PACKAGE_PATH_NOT_EXPORTED', 'ERR_PACKAGE_PATH_NOT_EXPORTED']);
  });
});
