import { execFile, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

/*
 * The README's example, as a reader would use it: the code blocks must be the files of
 * examples/readme/ verbatim; tsc compiles those files under both decorator settings (a new
 * TypeScript 5 project's standard decorators, and experimentalDecorators) against the built
 * package; then each mode's provider serves the other mode's consumer over loopback, finding
 * it through a file registry of their own, and so does the plain JavaScript provider (run as it
 * is, decorators called as functions).
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const exampleDir = `${root}examples/readme/`;
const tsc = `${root}node_modules/typescript/bin/tsc`;
type Mode = 'standard' | 'legacy';
const MODES: readonly Mode[] = ['standard', 'legacy'];
const EXPECTED_OUTPUT = 'hello, ada (tenant a)\n3\n2\n1\nliftoff\n';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the README example', () => {
  it('shows the files of examples/readme/ verbatim, every one of them', async () => {
    const readme = await readFile(`${root}README.md`, 'utf8');
    const shown = new Map<string, string>();
    for (const [, body] of readme.matchAll(/^```(?:ts|js)\n([\s\S]*?)^```$/gm)) {
      const file = /^\/\/ examples\/readme\/(\S+\.(?:ts|mjs))\b/.exec(body!)?.[1];
      if (file !== undefined) shown.set(file, body!);
    }
    const files = (await readdir(exampleDir)).filter((name) => name.endsWith('.ts') || name.endsWith('.mjs')).sort();
    expect([...shown.keys()].sort()).toEqual(files);
    expect(files).toEqual(['consumer.ts', 'greeter.ts', 'provider.mjs', 'provider.ts']);
    for (const file of files) expect(shown.get(file), file).toBe(await readFile(`${exampleDir}${file}`, 'utf8'));
  });

  describe('compiled by tsc in both decorator modes', () => {
    const built = (mode: Mode, file: string): string => `${root}build/readme/${mode}/${file}`;

    beforeAll(async () => {
      // One after the other: two cores, and each tsc takes most of one.
      for (const mode of MODES) await run(process.execPath, [tsc, '-p', `${exampleDir}tsconfig.${mode}.json`], { cwd: root, timeout: 120_000 });
    }, 240_000);

    it.each(MODES)('%s: the mode is the one asked for', async (mode) => {
      const { stdout } = await run(process.execPath, [tsc, '-p', `${exampleDir}tsconfig.${mode}.json`, '--showConfig'], { cwd: root });
      const options = (JSON.parse(stdout) as { compilerOptions: Record<string, unknown> }).compilerOptions;
      expect(options['experimentalDecorators'] === true).toBe(mode === 'legacy');
      // tsc's own lowering helper for each mode is in the provider it wrote.
      const provider = await readFile(built(mode, 'provider.js'), 'utf8');
      expect(provider.includes('__esDecorate(')).toBe(mode === 'standard');
      expect(provider.includes('__decorate(')).toBe(mode === 'legacy');
    });

    it.each([
      ['standard', 'legacy'],
      ['legacy', 'standard'],
      ['plain JavaScript', 'standard'],
    ] as const)(
      'a %s provider answers a %s consumer',
      async (providerMode, consumerMode) => {
        const registry = await tempDir();
        cleanups.push(registry.remove);
        const env = { ...process.env, SHUTTLE_REGISTRY: `file://${registry.dir}` };
        const providerFile = providerMode === 'plain JavaScript' ? `${exampleDir}provider.mjs` : built(providerMode, 'provider.js');
        const provider = spawn(process.execPath, [providerFile], { cwd: registry.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
        cleanups.push(async () => void provider.kill('SIGKILL'));
        let stderr = '';
        provider.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<number | null>((resolve) => provider.once('exit', resolve));
        const url = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the provider did not start; stderr: ${stderr}`)), 15_000);
          void exited.then((code) => reject(new Error(`the provider exited with ${code}; stderr: ${stderr}`)));
          createInterface({ input: provider.stdout }).on('line', (line) => {
            const serving = /^serving (shuttle:\/\/127\.0\.0\.1:\d+)$/.exec(line);
            if (serving === null) return;
            clearTimeout(timer);
            resolve(serving[1]!);
          });
        });
        expect(url).toMatch(/^shuttle:\/\/127\.0\.0\.1:\d+$/);

        const consumer = await run(process.execPath, [built(consumerMode, 'consumer.js')], { cwd: registry.dir, env, timeout: 30_000 });
        expect(consumer.stdout).toBe(EXPECTED_OUTPUT);
        expect(consumer.stderr).toBe('');

        // The provider's SIGTERM handler closes the server, and nothing else keeps it alive.
        provider.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(stderr).toBe('');
      },
      60_000,
    );
  });
});
