import { describe, expect, it } from 'vitest';
import { checkPackage, type PackageFacts } from '../../../scripts/check-package.mjs';

/*
 * The logic of scripts/check-package.mjs on made-up packages: each thing that breaks a fresh
 * project that installs the tarball is found and named, and a sound package passes.
 */
const sound = {
  pkg: {
    name: 'pkg',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    dependencies: { typed: '^1', untyped: '^1', '@types/untyped': '^1' },
    optionalDependencies: { native: '^1' },
    devDependencies: { 'test-only': '^1' },
  },
  files: ['package.json', 'README.md', 'docs/GUIDE.md', 'dist/index.js', 'dist/index.d.ts', 'dist/index.js.map', 'dist/util.js', 'src/index.ts', 'src/util.ts'],
  text: {
    'README.md': '[guide](docs/GUIDE.md#start), [site](https://example.com/x.md), [here](#use), [docs](docs)\n',
    'dist/index.js': [
      "import { x } from './util.js';",
      "import 'typed';",
      "const { createRequire } = await import('node:module');",
      "const proto = createRequire(import.meta.url).resolve('untyped/file.proto');",
      "const loaded = createRequire(import.meta.url)('untyped/deep');",
      "export const native = () => import('native');",
    ].join('\n'),
    'dist/index.d.ts':
      "import type { A } from 'typed';\nimport type { B } from 'untyped';\nimport type { Server } from 'node:net';\nexport * from './index.js';\n",
    'dist/index.js.map': JSON.stringify({ version: 3, sources: ['../src/index.ts'], mappings: '' }),
  } as Record<string, string>,
  sources: ['src/index.ts', 'src/util.ts'],
};

function facts(change: (copy: typeof sound) => void = () => {}): PackageFacts {
  const copy = structuredClone(sound);
  change(copy);
  return { pkg: copy.pkg, files: copy.files, read: (file) => copy.text[file] ?? '', hasTypes: (name) => name === 'typed', sources: copy.sources };
}

describe('the package check', () => {
  it('passes a package whose exports, types, maps and files are all there', () => {
    expect(checkPackage(facts())).toEqual([]);
  });

  it('an entry without a default or require condition cannot be required', () => {
    const problems = checkPackage(facts((p) => void (p.pkg.exports['.'] = { types: './dist/index.d.ts', import: './dist/index.js' } as never)));
    expect(problems).toEqual([`exports["."]: no "default" or "require" condition, so require('pkg') fails with "No exports main defined"`]);
  });

  it('an export target missing from the tarball', () => {
    const problems = checkPackage(facts((p) => void (p.files = p.files.filter((file) => file !== 'dist/index.js'))));
    expect(problems).toContain('exports["."].default: ./dist/index.js is not in the tarball');
  });

  it('a .d.ts importing a package without types, whose @types is only a dev dependency', () => {
    const problems = checkPackage(facts((p) => void delete (p.pkg.dependencies as Record<string, string>)['@types/untyped']));
    expect(problems).toEqual([
      'dist/index.d.ts: imports untyped, which has no types of its own and @types/untyped is not in dependencies (TS7016 in a strict project, `any` under skipLibCheck)',
    ]);
  });

  it('a .d.ts importing a package that is not a dependency, or a file not shipped', () => {
    const problems = checkPackage(
      facts((p) => void (p.text['dist/index.d.ts'] = "import type { C } from 'dev-only/deep';\nexport type { D } from './missing.js';\n")),
    );
    expect(problems).toEqual([
      "dist/index.d.ts: imports dev-only/deep, which is not in dependencies (a user's install will not have it)",
      'dist/index.d.ts: imports ./missing.js, which is not in the tarball',
    ]);
  });

  it('a source map whose sources are not shipped, unless it carries them inline', () => {
    const problems = checkPackage(facts((p) => void (p.files = p.files.filter((file) => file !== 'src/index.ts'))));
    expect(problems).toEqual(['dist/index.js.map: its source src/index.ts is not in the tarball (ship it, inline it, or ship no map)']);
    const inline = facts((p) => {
      p.files = p.files.filter((file) => file !== 'src/index.ts');
      p.text['dist/index.js.map'] = JSON.stringify({ version: 3, sources: ['../src/index.ts'], sourcesContent: ['export {}'], mappings: '' });
    });
    expect(checkPackage(inline)).toEqual([]);
  });

  it('test, bench and fixture files, and a compiled file whose source is gone', () => {
    const problems = checkPackage(facts((p) => void p.files.push('dist/test/helpers.js', 'bench/run.js', 'src/a.test.ts', 'dist/old.js')));
    expect(problems).toEqual([
      'dist/test/helpers.js: a test, bench or fixture file is shipped (narrow "files" in package.json)',
      'bench/run.js: a test, bench or fixture file is shipped (narrow "files" in package.json)',
      'src/a.test.ts: a test, bench or fixture file is shipped (narrow "files" in package.json)',
      'dist/test/helpers.js: compiled from no file of src/ (a stale build: remove dist/ and build again)',
      'dist/old.js: compiled from no file of src/ (a stale build: remove dist/ and build again)',
    ]);
  });

  it('a run-time load of a dev dependency, of a package not listed, or of a file not shipped', () => {
    const problems = checkPackage(
      facts((p) => {
        p.text['dist/index.js'] = [
          "import { x } from './gone.js';",
          "import 'test-only';",
          "const loaded = (await import('node:module')).createRequire(import.meta.url)('unlisted/deep');",
          "const path = require.resolve('test-only/package.json');",
          "export const later = () => import('@scope/unlisted');",
        ].join('\n');
      }),
    );
    expect(problems).toEqual([
      'dist/index.js: loads ./gone.js, which is not in the tarball',
      "dist/index.js: loads test-only at run time, which is only in devDependencies (a user's install will not have it)",
      "dist/index.js: loads @scope/unlisted at run time, which is not in dependencies (a user's install will not have it)",
      "dist/index.js: loads unlisted/deep at run time, which is not in dependencies (a user's install will not have it)",
      "dist/index.js: loads test-only/package.json at run time, which is only in devDependencies (a user's install will not have it)",
    ]);
  });

  it('a Markdown link to a file that is not shipped', () => {
    const problems = checkPackage(facts((p) => void (p.files = p.files.filter((file) => file !== 'docs/GUIDE.md'))));
    expect(problems).toEqual([
      'README.md: links to docs/GUIDE.md#start, which is not in the tarball (ship it, or link to a URL)',
      'README.md: links to docs, which is not in the tarball (ship it, or link to a URL)',
    ]);
  });

  it('a key, a certificate store, an .env file, or a private key inside a shipped file', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n';
    const problems = checkPackage(
      facts((p) => {
        p.files.push('dist/server.key', 'certs/ca.pem', '.env', 'config/.env.production', 'dist/store.p12', 'dist/keys.js');
        p.sources.push('src/keys.ts');
        p.text['dist/keys.js'] = `export const key = ${JSON.stringify(key).replaceAll('\\n', '\n')};`;
        // Naming the header in a message is not a key.
        p.text['dist/index.js'] += "\nthrow new Error('expected a PEM private key (-----BEGIN PRIVATE KEY-----)');";
      }),
    );
    expect(problems).toEqual([
      'dist/server.key: a key or secrets file is shipped (remove it, or narrow "files" in package.json)',
      'certs/ca.pem: a key or secrets file is shipped (remove it, or narrow "files" in package.json)',
      '.env: a key or secrets file is shipped (remove it, or narrow "files" in package.json)',
      'config/.env.production: a key or secrets file is shipped (remove it, or narrow "files" in package.json)',
      'dist/store.p12: a key or secrets file is shipped (remove it, or narrow "files" in package.json)',
      'dist/keys.js: holds a PEM private key',
    ]);
  });
});
