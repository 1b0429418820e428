import { afterEach } from 'vitest';
import { startFixture, type Child } from './process.js';
import { tempDir } from './tmp.js';

/** Per-test cleanups, fresh registry folders and provider processes for a file-registry test file. */
export interface FileSuite {
  /** Run in reverse order after each test. */
  readonly cleanups: Array<() => Promise<unknown> | unknown>;
  /** A fresh folder (mode 0700), removed after the test. */
  folder(): Promise<string>;
  /** A provider process announcing test.Echo in `dir`, stopped after the test. */
  provider(dir: string): Promise<Child>;
}

/** Registers the cleanup hook of a file-registry test file and returns its helpers. */
export function fileSuite(): FileSuite {
  const cleanups: FileSuite['cleanups'] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return {
    cleanups,
    async folder() {
      const tmp = await tempDir();
      cleanups.push(tmp.remove);
      return tmp.dir;
    },
    async provider(dir) {
      const child = await startFixture('provider', { SHUTTLE_REGISTRY: `file://${dir}` });
      cleanups.push(() => child.stop());
      return child;
    },
  };
}
