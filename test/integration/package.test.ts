import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, symlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkPackageAt } from '../../scripts/check-package.mjs';
import { tempDir } from '../helpers/tmp.js';

/*
 * The package as a newcomer installs it (scripts/check-package.mjs over `npm pack --dry-run`,
 * offline): every exports entry shipped, importable and requirable; the published types name
 * no package a user's install lacks types for; the compiled code loads no dev dependency;
 * source maps find their sources; the README's links find their docs; no test or bench file
 * ships. The built dist/ is what is checked.
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
  name: string;
  version: string;
  exports: Record<string, unknown>;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
};
const entries = Object.keys(pkg.exports)
  .filter((entry) => !entry.endsWith('.json'))
  .map((entry) => (entry === '.' ? pkg.name : `${pkg.name}/${entry.slice(2)}`));

/*
 * What a user's code gets from the published types: each line is checked by the type check of
 * a project of its own (below), where an `@ts-expect-error` that covers nothing, or a type that
 * differs from the one written, fails.
 */
const USER_TYPES = `
import { RpcCode, RpcError, type CallOptions, type Proxied, type StreamingCall } from ${JSON.stringify(pkg.name)};

interface Api {
  hello(name: string): Promise<string>;
  ping(): Promise<number>;
  count(from: number): AsyncGenerator<number, string>;
}
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
declare const api: Proxied<Api>;
declare const flag: boolean;
declare const options: CallOptions;

const pingCall = api.ping();
const answeredCall = api.hello('ada', { timeoutMs: 5, oneWay: false });
const oneWayCall = api.hello('ada', { oneWay: true });
const eitherCall = api.hello('ada', { oneWay: flag });
const optionsCall = api.hello('ada', options);
export const unary: Equal<typeof pingCall, Promise<number>> = true;
export const answered: Equal<typeof answeredCall, Promise<string>> = true;
export const oneWay: Equal<typeof oneWayCall, Promise<undefined>> = true;
export const eitherWay: Equal<typeof eitherCall, Promise<string | undefined>> = true;
export const anyOptions: Equal<typeof optionsCall, Promise<string | undefined>> = true;
export const stream: Equal<ReturnType<typeof api.count>, StreamingCall<number, string>> = true;
// @ts-expect-error the request of hello is a string
void api.hello(42);
// @ts-expect-error nope is not a method of Api
void api.nope();
// @ts-expect-error a streaming call cannot be one-way
void api.count(3, { oneWay: true });
// @ts-expect-error timeout is not a call option
void api.hello('ada', { timeout: 5 });
export const retryable = (error: unknown): boolean => error instanceof RpcError && error.code === RpcCode.UNAVAILABLE && error.retryable;
`;

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

  // `module: commonjs` alone makes TypeScript resolve as Node 10 did, reading `types` and
  // `typesVersions` rather than the exports map (nodenext reads the exports map). A package
  // directory of the project that is not "type": "module" makes its files CommonJS either way.
  it.each(['commonjs', 'nodenext'])('%s: a project type-checks against every entry', { timeout: 120_000 }, async (setting) => {
    const project = await tempDir({
      'package.json': JSON.stringify({ name: 'newcomer', private: true }),
      'tsconfig.json': JSON.stringify({
        compilerOptions: {
          module: setting,
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [`${root}node_modules/@types`],
        },
        files: ['index.ts', 'user.ts'],
      }),
      'index.ts': entries
        .map((entry, index) => `import * as entry${index} from ${JSON.stringify(entry)};\nexport type Entry${index} = typeof entry${index};\n`)
        .join(''),
      'user.ts': USER_TYPES,
    });
    try {
      await mkdir(`${project.dir}/node_modules`);
      await symlink(root, `${project.dir}/node_modules/${pkg.name}`, 'dir');
      const tsc = `${root}node_modules/typescript/bin/tsc`;
      const result = await run(process.execPath, [tsc, '-p', project.dir], { cwd: project.dir, timeout: 110_000 }).catch((error: { stdout: string }) => error);
      expect(result.stdout).toBe('');
    } finally {
      await project.remove();
    }
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

  /*
   * The tarball itself, as `npm install` would lay it out, offline: unpacked into a fresh
   * project's node_modules beside links to the package's dependencies only (this repository's
   * installed copies), so a file the tarball lacks or a dev dependency loaded at run time fails
   * here as it would for a user. The plain JavaScript provider of the README serves a consumer
   * written as a user would, and the bin answers --help and --version.
   */
  it('the packed tarball, installed with its dependencies only, serves the README example and runs its bin', { timeout: 90_000 }, async () => {
    const project = await tempDir({
      'package.json': JSON.stringify({ name: 'stranger', private: true, type: 'module' }),
      'consumer.mjs': [
        `import { createClient, defineService, serverStream, unary } from ${JSON.stringify(pkg.name)};`,
        "const Greeter = defineService('demo.Greeter', { hello: unary, countdown: serverStream });",
        'const client = await createClient({ timeoutMs: 5000 });',
        "const greeter = client.proxy(Greeter, { version: '1.0.0', waitForReady: true });",
        "console.log(await greeter.hello('ada', { metadata: { tenant: 'a' } }));",
        'const countdown = greeter.countdown(2);',
        'for await (const n of countdown) console.log(n);',
        'console.log(await countdown.trailer);',
        'await client.close();',
      ].join('\n'),
      // @opentelemetry/api is an optional peer: absent here, as in an application that does not trace.
      'tracing.mjs': [
        `import { createClient } from ${JSON.stringify(pkg.name)};`,
        "await createClient({ registry: 'memory://tracing', filters: ['opentelemetry'] }).then(",
        "  () => console.log('made'),",
        '  (error) => console.log(error.message),',
        ');',
      ].join('\n'),
    });
    const children: Array<ReturnType<typeof spawn>> = [];
    try {
      const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
      // --ignore-scripts: prepack would delete and rebuild dist/ under the other tests' feet.
      const packed = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', project.dir], { cwd: root, timeout: 60_000 });
      const tarball = `${project.dir}/${(JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename}`;
      const modules = `${project.dir}/node_modules`;
      await mkdir(modules);
      await run('tar', ['-xzf', tarball, '-C', modules], { timeout: 30_000 });
      await rename(`${modules}/package`, `${modules}/${pkg.name}`);
      const installed = [
        ...Object.keys(pkg.dependencies),
        ...Object.keys(pkg.optionalDependencies ?? {}).filter((name) => existsSync(`${root}node_modules/${name}`)),
      ];
      for (const name of installed) {
        await mkdir(path.dirname(`${modules}/${name}`), { recursive: true });
        await symlink(`${root}node_modules/${name}`, `${modules}/${name}`, 'dir');
      }
      await copyFile(`${root}examples/readme/provider.mjs`, `${project.dir}/provider.mjs`);

      const env = { ...process.env, SHUTTLE_REGISTRY: `file://${project.dir}/registry` };
      const provider = spawn(process.execPath, ['provider.mjs'], { cwd: project.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(provider);
      let providerOutput = '';
      provider.stdout.on('data', (chunk: Buffer) => (providerOutput += chunk.toString()));
      provider.stderr.on('data', (chunk: Buffer) => (providerOutput += chunk.toString()));
      const consumer = await run(process.execPath, ['consumer.mjs'], { cwd: project.dir, env, timeout: 30_000 }).catch(
        (error: { stdout: string; stderr: string }) => error,
      );
      expect({ consumer: consumer.stdout + consumer.stderr, provider: providerOutput }).toMatchObject({ consumer: 'hello, ada (tenant a)\n2\n1\nliftoff\n' });
      expect(providerOutput).toMatch(/^serving shuttle:\/\/127\.0\.0\.1:\d+\n$/);

      const tracing = await run(process.execPath, ['tracing.mjs'], { cwd: project.dir, env, timeout: 30_000 });
      expect(tracing.stdout).toMatch(
        /the opentelemetry filter needs the @opentelemetry\/api package, which is not installed: run 'npm install @opentelemetry\/api'/,
      );

      const bin = `${modules}/${pkg.name}/${pkg.bin['shuttle']}`;
      expect((await readFile(bin, 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
      const help = await run(process.execPath, [bin, '--help'], { cwd: project.dir, env, timeout: 30_000 });
      expect(help.stdout).toMatch(/^Usage: shuttle /);
      const version = await run(process.execPath, [bin, '--version'], { cwd: project.dir, env, timeout: 30_000 });
      expect(version.stdout).toBe(`${pkg.version}\n`);
    } finally {
      for (const child of children) child.kill('SIGKILL');
      await project.remove();
    }
  });
});
