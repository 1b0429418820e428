import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkImportGraph, formatViolations } from '../../../scripts/import-graph.mjs';
import { tempDir } from '../../helpers/tmp.js';

const src = fileURLToPath(new URL('../../../src', import.meta.url));

describe('the import graph of src/', () => {
  it('has no file cycle, no folder cycle, and every folder import goes down the layers', () => {
    const result = checkImportGraph(src);
    // The report names each cycle and the file imports behind it, so a failure says what to move.
    expect(formatViolations(result)).toBe('');
  });
});

describe('the import graph check', () => {
  const removals: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const remove of removals) await remove();
  });

  async function tree(files: Record<string, string>): Promise<string> {
    const { dir, remove } = await tempDir(files);
    removals.push(remove);
    return dir;
  }

  it('reports a file cycle, whatever kind of import closes it', async () => {
    const dir = await tree({
      'a/one.ts': "import { two } from './two.js';\nexport const one = two;\n",
      'a/two.ts': "import type { Three } from './three.js';\nexport const two = 2 as Three;\n",
      'a/three.ts': "export type { One } from './one.js';\nexport type Three = number;\n",
      'a/free.ts': "export const free = await import('./free-too.js');\n",
      'a/free-too.ts': 'export const x = 1;\n',
    });
    const result = checkImportGraph(dir, [['a']]);
    expect(result.files.map((found) => found.cycle)).toEqual([['a/one.ts', 'a/two.ts', 'a/three.ts', 'a/one.ts']]);
    expect(result.folders).toEqual([]);
    expect(formatViolations(result)).toContain('file cycle: a/one.ts -> a/two.ts -> a/three.ts -> a/one.ts');
  });

  it('reports a folder cycle made of files that do not cycle, with the file imports behind it', async () => {
    const dir = await tree({
      'low/types.ts': 'export interface Shape { readonly size: number }\n',
      'low/uses-high.ts': "import { helper } from '../high/helper.js';\nexport const used = helper;\n",
      'high/helper.ts': 'export const helper = 1;\n',
      'high/impl.ts': "import type { Shape } from '../low/types.js';\nexport const shape: Shape = { size: 1 };\n",
    });
    const result = checkImportGraph(dir, [['low'], ['high']]);
    expect(result.files).toEqual([]);
    expect(result.folders.map((found) => found.cycle)).toEqual([['high', 'low', 'high']]);
    const report = formatViolations(result);
    expect(report).toContain('folder cycle: high -> low -> high');
    expect(report).toContain('high/impl.ts -> low/types.ts');
    expect(report).toContain('low/uses-high.ts -> high/helper.ts');
    expect(report).toContain('layer: low may not import high');
  });

  it('reports an import of a folder in the same row or above, and a folder with no row', async () => {
    const dir = await tree({
      'bottom/a.ts': 'export const a = 1;\n',
      'side/b.ts': "import { a } from '../bottom/a.js';\nexport const b = a;\n",
      'peer/c.ts': "import { b } from '../side/b.js';\nexport const c = b;\n",
      'stray/d.ts': 'export const d = 1;\n',
      'index.ts': "export { c } from './peer/c.js';\n",
    });
    const result = checkImportGraph(dir, [['bottom'], ['side', 'peer'], ['.']]);
    expect(result.folders).toEqual([]);
    expect(result.upward).toEqual([['peer', 'side']]);
    expect(result.unknown).toEqual(['stray']);
  });

  it('passes a tree whose imports only go down', async () => {
    const dir = await tree({
      'bottom/a.ts': 'export const a = 1;\n',
      'top/b.ts': "import { a } from '../bottom/a.js';\nimport type { A } from '../bottom/types.js';\nexport const b: A = a;\n",
      'bottom/types.ts': 'export type A = number;\n',
    });
    expect(formatViolations(checkImportGraph(dir, [['bottom'], ['top']]))).toBe('');
  });
});
