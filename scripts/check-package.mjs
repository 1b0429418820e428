#!/usr/bin/env node
// What a newcomer installs: the files `npm pack` would put in the tarball (read with
// `npm pack --dry-run --json --ignore-scripts`, offline and in seconds), checked for what breaks
// a fresh project that uses them:
//
// - every target of the `exports` map is in the tarball, and every entry can be required as
//   well as imported (a `default` or `require` condition: Node >= 20.19 requires ES modules);
// - every bare import of a shipped .d.ts names a dependency that brings its own types (or
//   whose @types package is a dependency too): else a strict project fails with TS7016, or,
//   under skipLibCheck, silently types the name as `any`; every relative import is shipped;
// - every bare import of a shipped .js file (static, dynamic, `require`, `require.resolve`,
//   `createRequire(…)(…)`) names a dependency, optional or peer dependency, never a dev
//   dependency, which a user's install does not have; every relative one is shipped;
// - every relative link of a shipped Markdown file (the README's links to docs/) is shipped;
// - every source map's sources are in the tarball;
// - no private key, certificate store or .env file is shipped (by name, or a PEM private key
//   block in any text file);
// - no test, bench or fixture file is shipped, and no compiled file without its source
//   (left in dist/ by a build of a file since removed).
//
// Usage: node scripts/check-package.mjs [dir]   (dir defaults to the repository root; build first)
// Exits 1 and prints every problem when one is found.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, normalize, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The files `npm pack` would ship from the package at `root`, `/`-separated and relative to it.
 * @param {string} root
 * @returns {string[]}
 */
export function packedFiles(root) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out)[0].files.map((file) => file.path);
}

/** Names of files that hold keys or secrets: PEM/DER keys, certificate stores, .env files. */
const SECRET_FILE = /\.(pem|key|p12|pfx|jks|keystore)$|(^|\/)\.env(\.|$)|(^|\/)id_(rsa|ecdsa|ed25519)$/;

/** A PEM private key with its body (a message that only names the header is not one). */
const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}/;

/** Paths no published package needs: tests, benchmarks, fixtures. */
const NOT_SHIPPED = /(^|\/)(test|tests|__tests__|bench|benchmarks|fixtures)\/|\.(test|spec|bench)\.[cm]?[jt]sx?$/;

/**
 * Checks a package's shipped files. Pure: every fact comes from the arguments.
 * @param {object} input
 * @param {Record<string, any>} input.pkg the package.json
 * @param {readonly string[]} input.files the shipped files (`/`-separated, relative to the root)
 * @param {(file: string) => string} input.read the text of a shipped file
 * @param {(name: string) => boolean} input.hasTypes whether the installed package `name` brings its own types
 * @param {readonly string[]} [input.sources] the source files (e.g. src/a/b.ts) the compiled ones come from
 * @param {string} [input.sourceDir] where they are (src)
 * @param {string} [input.outDir] where they are compiled to (dist)
 * @returns {string[]} one line per problem; empty when the package is fine
 */
export function checkPackage({ pkg, files, read, hasTypes, sources, sourceDir = 'src', outDir = 'dist' }) {
  const problems = [];
  const shipped = new Set(files);
  problems.push(...checkExports(pkg, shipped));
  for (const file of files) {
    if (NOT_SHIPPED.test(file)) problems.push(`${file}: a test, bench or fixture file is shipped (narrow "files" in package.json)`);
    if (SECRET_FILE.test(file)) problems.push(`${file}: a key or secrets file is shipped (remove it, or narrow "files" in package.json)`);
    else if (/\.([cm]?[jt]s|json|md|txt|ya?ml)$/.test(file) && PRIVATE_KEY_BLOCK.test(read(file))) problems.push(`${file}: holds a PEM private key`);
    if (file.endsWith('.map')) problems.push(...checkSourceMap(file, read(file), shipped));
    if (file.endsWith('.d.ts')) problems.push(...checkDeclarationImports(file, read(file), shipped, pkg, hasTypes));
    else if (/\.[cm]?js$/.test(file)) problems.push(...checkRuntimeImports(file, read(file), shipped, pkg));
    if (file.endsWith('.md')) problems.push(...checkMarkdownLinks(file, read(file), shipped));
  }
  if (sources !== undefined) {
    const known = new Set(sources);
    for (const file of files) {
      const compiled = new RegExp(`^${outDir}/(.+)\\.(js|d\\.ts)$`).exec(file);
      if (compiled === null) continue;
      if (!known.has(`${sourceDir}/${compiled[1]}.ts`))
        problems.push(`${file}: compiled from no file of ${sourceDir}/ (a stale build: remove ${outDir}/ and build again)`);
    }
  }
  return problems;
}

/**
 * @param {Record<string, any>} pkg
 * @param {Set<string>} shipped
 */
function checkExports(pkg, shipped) {
  const problems = [];
  const exportsMap = pkg.exports;
  if (exportsMap === undefined || typeof exportsMap !== 'object') return ['package.json: no "exports" map'];
  for (const [entry, target] of Object.entries(exportsMap)) {
    const targets = typeof target === 'string' ? { default: target } : target;
    for (const [condition, path] of Object.entries(targets)) {
      if (typeof path !== 'string') continue;
      if (!shipped.has(posix.normalize(path))) problems.push(`exports["${entry}"].${condition}: ${path} is not in the tarball`);
    }
    if (entry.endsWith('.json')) continue;
    if (!('default' in targets) && !('require' in targets)) {
      problems.push(`exports["${entry}"]: no "default" or "require" condition, so require('${join(pkg.name, entry)}') fails with "No exports main defined"`);
    }
  }
  return problems;
}

/**
 * @param {string} file
 * @param {string} text
 * @param {Set<string>} shipped
 */
function checkSourceMap(file, text, shipped) {
  let map;
  try {
    map = JSON.parse(text);
  } catch {
    return [`${file}: not JSON`];
  }
  if (Array.isArray(map.sourcesContent) && map.sourcesContent.length === map.sources?.length) return [];
  const problems = [];
  for (const source of map.sources ?? []) {
    const path = posix.normalize(posix.join(posix.dirname(file), map.sourceRoot ?? '', source));
    if (!shipped.has(path)) problems.push(`${file}: its source ${path} is not in the tarball (ship it, inline it, or ship no map)`);
  }
  return problems;
}

/**
 * @param {string} file
 * @param {string} text
 * @param {Set<string>} shipped
 * @param {Record<string, any>} pkg
 * @param {(name: string) => boolean} hasTypes
 */
function checkDeclarationImports(file, text, shipped, pkg, hasTypes) {
  const problems = [];
  const info = ts.preProcessFile(text, true, true);
  const specifiers = [...info.importedFiles.map((ref) => ref.fileName), ...info.typeReferenceDirectives.map((ref) => ref.fileName)];
  const dependencies = { ...pkg.dependencies, ...pkg.peerDependencies };
  for (const specifier of specifiers) {
    if (specifier.startsWith('.')) {
      const base = posix.normalize(posix.join(posix.dirname(file), specifier));
      const candidates = [base.replace(/\.js$/, '.d.ts'), `${base}.d.ts`, `${base}/index.d.ts`, base];
      if (!candidates.some((candidate) => shipped.has(candidate))) problems.push(`${file}: imports ${specifier}, which is not in the tarball`);
      continue;
    }
    const name = packageName(specifier);
    if (specifier.startsWith('node:') || builtinModules.includes(name) || name === 'node') continue;
    if (name === pkg.name) continue;
    if (!(name in dependencies)) {
      problems.push(`${file}: imports ${specifier}, which is not in dependencies (a user's install will not have it)`);
      continue;
    }
    const typesPackage = `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`;
    if (!hasTypes(name) && !(typesPackage in dependencies)) {
      problems.push(
        `${file}: imports ${specifier}, which has no types of its own and ${typesPackage} is not in dependencies (TS7016 in a strict project, \`any\` under skipLibCheck)`,
      );
    }
  }
  return problems;
}

/**
 * @param {string} file
 * @param {string} text
 * @param {Set<string>} shipped
 * @param {Record<string, any>} pkg
 */
function checkRuntimeImports(file, text, shipped, pkg) {
  const problems = [];
  const specifiers = ts.preProcessFile(text, true, true).importedFiles.map((ref) => ref.fileName);
  // Loads preProcessFile does not see: a path resolved to read a file of a dependency, and a
  // module required through a require made from `import.meta.url`.
  for (const match of text.matchAll(/\brequire\.resolve\(\s*(['"])([^'"]+)\1|\bcreateRequire\([^)]*\)\(\s*(['"])([^'"]+)\3/g)) {
    specifiers.push(match[2] ?? match[4]);
  }
  const installed = { ...pkg.dependencies, ...pkg.optionalDependencies, ...pkg.peerDependencies };
  for (const specifier of new Set(specifiers)) {
    if (specifier.startsWith('.')) {
      const path = posix.normalize(posix.join(posix.dirname(file), specifier));
      if (!shipped.has(path) && !shipped.has(`${path}.js`) && !shipped.has(`${path}/index.js`))
        problems.push(`${file}: loads ${specifier}, which is not in the tarball`);
      continue;
    }
    const name = packageName(specifier);
    if (specifier.startsWith('node:') || builtinModules.includes(name) || name === pkg.name || name in installed) continue;
    const where = name in (pkg.devDependencies ?? {}) ? 'only in devDependencies' : 'not in dependencies';
    problems.push(`${file}: loads ${specifier} at run time, which is ${where} (a user's install will not have it)`);
  }
  return problems;
}

/**
 * @param {string} file
 * @param {string} text
 * @param {Set<string>} shipped
 */
function checkMarkdownLinks(file, text, shipped) {
  const problems = [];
  for (const [, target] of text.matchAll(/\]\(([^()\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
    const path = posix.normalize(posix.join(posix.dirname(file), decodeURI(target.replace(/[#?].*$/, ''))));
    if (!shipped.has(path) && ![...shipped].some((shippedFile) => shippedFile.startsWith(`${path}/`))) {
      problems.push(`${file}: links to ${target}, which is not in the tarball (ship it, or link to a URL)`);
    }
  }
  return problems;
}

/** `@scope/name/deep` -> `@scope/name`; `name/deep` -> `name`. */
function packageName(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * Whether the package `name`, installed under `root`/node_modules, brings its own types.
 * @param {string} root
 * @returns {(name: string) => boolean}
 */
export function installedTypes(root) {
  return (name) => {
    const dir = join(root, 'node_modules', name);
    const manifestPath = join(dir, 'package.json');
    if (!existsSync(manifestPath)) return false;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    if (manifest.types || manifest.typings) return true;
    if (JSON.stringify(manifest.exports ?? {}).includes('"types"')) return true;
    return existsSync(join(dir, 'index.d.ts'));
  };
}

/**
 * Runs every check on the package at `root`.
 * @param {string} root
 * @returns {string[]} the problems
 */
export function checkPackageAt(root) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const files = packedFiles(root);
  const sources = listSources(root, 'src');
  return checkPackage({ pkg, files, read: (file) => readFileSync(join(root, file), 'utf8'), hasTypes: installedTypes(root), sources });
}

/** Every .ts file under `root`/`dir`, `/`-separated and relative to `root`. */
function listSources(root, dir) {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', `${dir}/*.ts`], { cwd: root, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => normalize(line).split('\\').join('/'));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const problems = checkPackageAt(root);
  if (problems.length > 0) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  console.log('package: the exports, types, source maps and files a fresh project needs are all shipped');
}
