import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/*
 * The README says why each dependency is there: every package in package.json has a row in its
 * dependency table, and the table names no package the project no longer has.
 */
const root = new URL('../../../', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as Record<string, Record<string, string> | undefined>;
const readme = readFileSync(new URL('README.md', root), 'utf8');

/** The first cells of the README table whose header is `| package | why |`. */
function tableRows(): string[] {
  const lines = readme.split('\n');
  const start = lines.findIndex((line) => /^\| package \| why \|$/.test(line.trim()));
  expect(start, 'the README has a "| package | why |" table').toBeGreaterThanOrEqual(0);
  const rows: string[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|')[1]!.trim());
  }
  return rows;
}

describe('the README dependency table', () => {
  const rows = tableRows();
  const declared = [manifest['dependencies'], manifest['devDependencies'], manifest['optionalDependencies']].flatMap((group) => Object.keys(group ?? {}));

  it('has a row for every dependency in package.json', () => {
    // A row may name several packages ("a, b", "a + b"); a scoped family may drop its scope
    // after the first ("@opentelemetry/sdk-trace-base, context-async-hooks").
    const named = new Set(
      rows.flatMap((row) =>
        row
          .replace(/\([^)]*\)/g, '')
          .split(/,|\+/)
          .map((name) => name.trim().split(' ')[0]!),
      ),
    );
    const scopes = [...named].filter((name) => name.startsWith('@')).map((name) => name.split('/')[0]!);
    const missing = declared.filter(
      (name) => !named.has(name) && !(name.startsWith('@') && scopes.includes(name.split('/')[0]!) && named.has(name.split('/')[1]!)),
    );
    expect(missing).toEqual([]);
  });

  it('names no package that package.json does not have', () => {
    const stale = rows
      .flatMap((row) => {
        const names = row
          .replace(/\([^)]*\)/g, '')
          .split(/,|\+/)
          .map((name) => name.trim().split(' ')[0]!);
        const scope = names.find((name) => name.startsWith('@'))?.split('/')[0];
        return names.map((name) => (name.startsWith('@') || scope === undefined || declared.includes(name) ? name : `${scope}/${name}`));
      })
      .filter((name) => !declared.includes(name));
    expect(stale).toEqual([]);
  });
});
