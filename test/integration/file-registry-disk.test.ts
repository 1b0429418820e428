import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileRegistry, type FileRegistry } from '../../src/registry/file/file.js';
import { providerRecord } from '../helpers/fake-transport.js';

/*
 * The file registry's folder on a disk that is full: a provider's start fails saying which
 * registry, which file and what is wrong in words — not Node's `ENOSPC: no space left on device,
 * write`, which names neither. The full disk is a tmpfs of 8 KiB (mounting one needs root; the
 * test is skipped without it).
 */
const dir = mkdtempSync(path.join(tmpdir(), 'shuttle-full-'));
const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8k,mode=0700', 'tmpfs', dir]).status === 0;
afterAll(() => {
  if (mounted) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!mounted)('a file registry on a full disk', () => {
  it('refuses the registration naming the registry, the file and the full disk', async () => {
    // Fill it: 8 KiB of one file.
    spawnSync('dd', ['if=/dev/zero', `of=${path.join(dir, 'fill')}`, 'bs=1k', 'count=8']);
    const registry = createFileRegistry({ url: `file://${dir}` }) as FileRegistry;
    try {
      await expect(registry.register(providerRecord(4100, { service: 'test.Echo' }))).rejects.toThrow(
        new RegExp(`^\\[unavailable\\] file registry ${dir}: cannot write services/.*: the disk is full \\(ENOSPC\\)$`),
      );
    } finally {
      await registry.close();
    }
  });
});
