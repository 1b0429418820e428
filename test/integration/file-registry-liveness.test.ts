import { lstat, mkdir, readFile, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { monotonicNow } from '../../src/common/clock.js';
import { createFileRegistry, type FileRegistry } from '../../src/registry/file/file.js';
import type { ServiceInstance } from '../../src/registry/registry.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { fileSuite } from '../helpers/file-suite.js';
import { waitUntil } from '../helpers/wait.js';
import { HOUR_MS, sleep, stepWallClock } from '../helpers/wall-clock.js';

/*
 * Liveness in the file registry against someone who can write to its folder: heartbeat times
 * planted in the future, and a provider's files or folders swapped for symbolic links. Real
 * files and links, registries in this process.
 */
const { cleanups, folder } = fileSuite();

function registry(dir: string, options: Record<string, unknown> = {}): FileRegistry {
  const created = createFileRegistry({ url: `file://${dir}`, ...options }) as FileRegistry;
  cleanups.push(() => created.close());
  return created;
}
const recordFile = (dir: string, port: number): string => path.join(dir, 'services', 'test.Echo', `1.0.0@_@10.0.0.1%3A${port}.json`);
const listed = (instances: readonly ServiceInstance[]): number[] => instances.map((instance) => instance.port).sort((a, b) => a - b);
const oldTime = new Date('2001-01-01T00:00:00Z');

describe('file registry: a heartbeat time in the future is not a heartbeat', () => {
  it('a record dated ahead of the clock is not listed (beyond 2 s), and one nobody beats for is deleted after ten TTLs', async () => {
    const dir = await folder();
    await mkdir(path.join(dir, 'services', 'test.Echo'), { recursive: true });
    const now = Date.now();
    const plant = async (port: number, aheadMs: number): Promise<void> => {
      await writeFile(recordFile(dir, port), JSON.stringify(providerRecord(port)));
      const when = new Date(now + aheadMs);
      await utimes(recordFile(dir, port), when, when);
    };
    await plant(1001, 0); // an ordinary heartbeat
    await plant(1002, 1000); // within the skew allowance (timestamp rounding)
    await plant(1003, 20_000); // a dead record that says it beats for another 20 s
    await plant(1004, 86_400_000); // ... or for another day
    let seen: ServiceInstance[] = [];
    await registry(dir, { ttlMs: 3000 }).subscribe({ service: 'test.Echo' }, (instances) => (seen = [...instances]));
    expect(listed(seen)).toEqual([1001, 1002]);
    // A time far from now, ahead as behind, is judged stale but not deleted on sight: it may be
    // a live provider's after a step of the wall clock. Unchanged for ten TTLs as the reader
    // measures them, it is nobody's heartbeat and is removed.
    await expect(stat(recordFile(dir, 1004))).resolves.toBeDefined();
    await registry(dir, { heartbeatMs: 50, ttlMs: 100, pollMs: 20 }).subscribe({ service: 'test.Echo' }, () => {});
    for (const port of [1003, 1004]) {
      await waitUntil(
        () =>
          stat(recordFile(dir, port)).then(
            () => false,
            () => true,
          ),
        `the unbeaten record ${port} to be deleted`,
        4000,
      );
    }
  });

  it("a live provider's own record dated in the future is stamped back to now by its next heartbeat", async () => {
    const dir = await folder();
    const provider = registry(dir, { heartbeatMs: 50, ttlMs: 3000 });
    await provider.register(providerRecord(2001));
    const later = new Date(Date.now() + 3_600_000);
    await utimes(recordFile(dir, 2001), later, later);
    await waitUntil(async () => (await stat(recordFile(dir, 2001))).mtimeMs <= Date.now() + 1000, 'the heartbeat to restamp the record', 2000);
    let seen: ServiceInstance[] = [];
    await registry(dir).subscribe({ service: 'test.Echo' }, (instances) => (seen = [...instances]));
    expect(listed(seen)).toEqual([2001]);
  });
});

describe('file registry across a wall-clock step', () => {
  afterEach(() => vi.restoreAllMocks());

  for (const step of [HOUR_MS, -HOUR_MS]) {
    it(`${step > 0 ? 'forward' : 'back'} by an hour on the reader's host: live records stay listed and on disk`, async () => {
      const dir = await folder();
      const provider = registry(dir, { heartbeatMs: 50, ttlMs: 300 });
      await provider.register(providerRecord(4001));
      let seen: ServiceInstance[] = [];
      await registry(dir, { heartbeatMs: 50, ttlMs: 300, pollMs: 20 }).subscribe({ service: 'test.Echo' }, (instances) => (seen = [...instances]));
      expect(listed(seen)).toEqual([4001]);
      // The provider stamps its heartbeats with the true time; the reader's clock is an hour off.
      stepWallClock(step);
      let missing = 0;
      for (let i = 0; i < 25; i++) {
        await sleep(20);
        if (listed(seen).length === 0) missing++;
      }
      expect(missing).toBe(0);
      await expect(stat(recordFile(dir, 4001))).resolves.toBeDefined();
    });
  }
});

describe("file registry: a load report's age", () => {
  it('is the time since its file last changed, not since the latest poll read it', async () => {
    const dir = await folder();
    await mkdir(path.join(dir, 'services', 'test.Echo'), { recursive: true });
    await mkdir(path.join(dir, 'load'), { recursive: true });
    await writeFile(recordFile(dir, 4101), JSON.stringify(providerRecord(4101)));
    const load = { timestamp: Date.now(), running: 1, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining: false };
    await writeFile(path.join(dir, 'load', '10.0.0.1%3A4101.json'), JSON.stringify(load));
    // The record keeps beating; the load file is left as it was written.
    const beat = setInterval(() => {
      const now = new Date();
      void utimes(recordFile(dir, 4101), now, now).catch(() => {});
    }, 50);
    cleanups.push(() => clearInterval(beat));
    let seen: ServiceInstance[] = [];
    await registry(dir, { heartbeatMs: 50, ttlMs: 1000, pollMs: 20 }).subscribe({ service: 'test.Echo' }, (instances) => (seen = [...instances]));
    expect(seen[0]?.load?.running).toBe(1);
    await sleep(600);
    const receivedAt = seen[0]?.load?.receivedAt ?? Number.NaN;
    expect(monotonicNow() - receivedAt).toBeGreaterThanOrEqual(500);
  });
});

describe('file registry: the heartbeat never follows a link', () => {
  it('a record swapped for a link to a file outside the folder: the target is untouched, the record is written again as a regular file', async () => {
    const dir = await folder();
    const outside = await folder();
    const victim = path.join(outside, 'victim.txt');
    await writeFile(victim, 'victim');
    await utimes(victim, oldTime, oldTime);
    const provider = registry(dir, { heartbeatMs: 50, ttlMs: 3000 });
    const record = providerRecord(3001);
    await provider.register(record);
    const file = recordFile(dir, 3001);
    await rm(file);
    await symlink(victim, file);

    await waitUntil(async () => (await lstat(file).catch(() => undefined))?.isFile() === true, 'the record to be a regular file again', 2000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // several more heartbeats
    expect((await lstat(file)).isFile()).toBe(true);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(record);
    const target = await stat(victim);
    expect(target.mtimeMs).toBe(oldTime.getTime());
    expect(await readFile(victim, 'utf8')).toBe('victim');
    expect(provider.rejectedEntries).toBeGreaterThanOrEqual(1);
    let seen: ServiceInstance[] = [];
    await registry(dir).subscribe({ service: 'test.Echo' }, (instances) => (seen = [...instances]));
    expect(listed(seen)).toEqual([3001]);
  });

  it('a service folder swapped for a link to a folder outside: nothing there is touched or written, the folder is made again', async () => {
    const dir = await folder();
    const outside = await folder();
    const provider = registry(dir, { heartbeatMs: 50, ttlMs: 3000 });
    const record = providerRecord(4001);
    await provider.register(record);
    const serviceFolder = path.dirname(recordFile(dir, 4001));
    // The outside folder holds a file of the record's name: a path-following heartbeat would touch it.
    const victim = path.join(outside, path.basename(recordFile(dir, 4001)));
    await writeFile(victim, 'victim');
    await utimes(victim, oldTime, oldTime);
    await rename(serviceFolder, `${serviceFolder}.moved`);
    await symlink(outside, serviceFolder);

    // Between the link's removal and the new folder, nothing is there.
    await waitUntil(
      async () => (await lstat(serviceFolder).catch(() => undefined))?.isDirectory() === true,
      'the service folder to be a real folder again',
      2000,
    );
    await waitUntil(async () => (await lstat(recordFile(dir, 4001)).catch(() => undefined))?.isFile() === true, 'the record to be written again', 2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(JSON.parse(await readFile(recordFile(dir, 4001), 'utf8'))).toEqual(record);
    expect((await stat(victim)).mtimeMs).toBe(oldTime.getTime());
    expect(await readFile(victim, 'utf8')).toBe('victim');
    expect((await lstat(outside)).isDirectory()).toBe(true);
  });
});

describe('file registry: a provider rewriting its own files is not a replacement', () => {
  it('load reports written while heartbeats run raise no "replaced" warning and refuse nothing', async () => {
    const dir = await folder();
    const provider = registry(dir, { heartbeatMs: 50, ttlMs: 3000 });
    await provider.register(providerRecord(5001));
    // A provider reports its load every 500 ms by default; back to back here, so that heartbeats
    // land while a report is being written.
    const until = Date.now() + 1500;
    let reports = 0;
    while (Date.now() < until) {
      await provider.reportLoad('10.0.0.1:5001', {
        timestamp: Date.now(),
        running: reports % 7,
        waiting: 0,
        waitingUncachedTokens: 0,
        kvUsage: 0,
        tokensPerSecond: 0,
        draining: false,
      });
      reports++;
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // heartbeats after the last report
    expect(reports).toBeGreaterThan(20);
    expect(provider.rejectedEntries).toBe(0);
  });
});
