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

/*
 * What a user's `npm install` brings (package-lock.json without the dev-only packages) runs on
 * the oldest Node the package accepts: a dependency whose `engines` excludes it makes npm warn
 * EBADENGINE on every install, and fails at run time if it is loaded.
 */
describe('the installed dependencies', () => {
  /**
   * Packages that exclude the oldest Node but are never loaded by shuttle-rpc, each with why;
   * the README says the same where it explains the warning.
   */
  const NEVER_LOADED: Record<string, string> = {
    cookie: "fastify's inject() loads it (through light-my-request); shuttle-rpc never calls inject()",
  };

  it('each runs on the oldest Node in engines, or is never loaded', () => {
    const oldest = /^>=\s*(\d+\.\d+(?:\.\d+)?)$/.exec((manifest['engines'] as Record<string, string> | undefined)?.['node'] ?? '')?.[1];
    expect(oldest, 'engines.node is ">=x.y"').toBeDefined();
    const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
      packages: Record<string, { dev?: boolean; engines?: { node?: string } | string[] }>;
    };
    const excluding: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      if (path === '' || entry.dev === true || range === undefined || admits(range, oldest!)) continue;
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      if (!(name in NEVER_LOADED)) excluding.push(`${name} needs node ${range}`);
    }
    expect(excluding).toEqual([]);
  });

  it('the README explains each warning that is left', () => {
    for (const name of Object.keys(NEVER_LOADED)) expect(readme).toContain(`EBADENGINE\` for \`${name}@`);
  });

  it("a package whose state is one process global per version is a peer dependency, so the one copy is the application's", () => {
    // @opentelemetry/api keeps the SDK an application registers in a global that a copy of
    // another minor version ignores: our own nested copy would trace nothing, silently.
    for (const name of ['@opentelemetry/api']) {
      expect(manifest['dependencies']?.[name], `${name} in dependencies`).toBeUndefined();
      expect(manifest['peerDependencies']?.[name], `${name} in peerDependencies`).toBeDefined();
    }
  });

  it('reads the range forms of the lock file', () => {
    expect(['>=20', '>= 10.x', '^24 || ^22 || ^20', '10.* || >= 12.*', '*', '>=0.1.90', '^18 || ^20 || >= 21'].every((range) => admits(range, '20.19'))).toBe(
      true,
    );
    expect(['>=22', '^22 || ^24', '>=20.20', '18.*'].some((range) => admits(range, '20.19'))).toBe(false);
  });
});

/** Whether the npm range `range` (`>=`, `^`, `x.*`, `*`, `||`, spaces between comparators) admits version `version`. */
function admits(range: string, version: string): boolean {
  const parse = (text: string): number[] => text.split('.').map((part) => (/^\d+$/.test(part) ? Number(part) : 0));
  const compare = (a: number[], b: number[]): number => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const have = parse(version);
  return range.split('||').some((alternative) =>
    alternative
      .trim()
      .replace(/(>=|<=|>|<|\^|~)\s+/g, '$1')
      .split(/\s+/)
      .every((comparator) => {
        if (comparator === '*' || comparator === '') return true;
        const [, operator = '', text = ''] = /^(>=|<=|>|<|\^|~)?(.*)$/.exec(comparator)!;
        const want = parse(text);
        if (operator === '>=') return compare(have, want) >= 0;
        if (operator === '>') return compare(have, want) > 0;
        if (operator === '<') return compare(have, want) < 0;
        if (operator === '<=') return compare(have, want) <= 0;
        if (operator === '^') return have[0] === want[0] && compare(have, want) >= 0;
        // x.*, x.y.*, x, and ~x.y: the named parts must match, the rest may be anything.
        const named = text.split('.').filter((part) => /^\d+$/.test(part)).length;
        return want.slice(0, named).every((part, i) => have[i] === part) && (operator !== '~' || compare(have, want) >= 0);
      }),
  );
}
