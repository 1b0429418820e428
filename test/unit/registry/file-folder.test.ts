import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { FileRegistry } from '../../../src/registry/file/file.js';
import type { ServiceInstance } from '../../../src/registry/registry.js';
import { providerRecord } from '../../helpers/fake-transport.js';

/*
 * The file registry's folder as a user types it: readers (a consumer, `shuttle ls`) never create
 * it, a provider creates it private, and a path that cannot be made fails with its reason
 * instead of hanging.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function registry(dir: string): FileRegistry {
  const created = new FileRegistry({ dir, heartbeatMs: 1000, ttlMs: 3000, pollMs: 20 });
  cleanups.push(() => created.close());
  return created;
}
async function scratch(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shuttle-folder-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const instance = providerRecord(4001, { host: '127.0.0.1', startTime: Date.now() });
/** Settles within `ms`, or reports that it hung. */
function within<T>(ms: number, promise: Promise<T>): Promise<T | 'hung'> {
  return Promise.race([promise, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref())]);
}

describe('file registry folder', () => {
  it('a reader given a folder that does not exist lists nothing and leaves no folder behind', async () => {
    const typo = path.join(await scratch(), 'typo', 'registry');
    const reader = registry(typo);
    expect(await reader.services()).toEqual([]);
    const seen: ServiceInstance[][] = [];
    const subscription = await reader.subscribe({ service: 'test.Echo' }, (instances) => seen.push([...instances]));
    await new Promise((resolve) => setTimeout(resolve, 100)); // several polls
    subscription.close();
    expect(seen).toEqual([[]]);
    await expect(stat(path.dirname(typo))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a provider creates the missing folders private, and a reader that came first then sees it', async () => {
    const dir = path.join(await scratch(), 'a', 'b');
    const reader = registry(dir);
    let latest: readonly ServiceInstance[] = [];
    const subscription = await reader.subscribe({ service: 'test.Echo' }, (instances) => (latest = instances));
    cleanups.push(async () => subscription.close());
    await registry(dir).register(instance);
    for (const folder of [path.dirname(dir), dir]) expect((await stat(folder)).mode & 0o777).toBe(0o700);
    const deadline = Date.now() + 2000;
    while (latest.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(latest.map((found) => found.port)).toEqual([4001]);
  });

  it('a folder that cannot be made fails at once, naming the folder and the reason', async () => {
    // Node's own recursive mkdir never settles under /proc; a registry path is user input.
    const result = await within(
      3000,
      registry('/proc/shuttle-no-such/registry')
        .register(instance)
        .then(
          () => 'registered',
          (error: unknown) => error,
        ),
    );
    expect(result).toBeInstanceOf(RpcError);
    expect((result as RpcError).code).toBe(RpcCode.UNAVAILABLE);
    expect((result as RpcError).message).toContain('/proc/shuttle-no-such/registry');
    expect((result as RpcError).message).toContain('ENOENT');
  });
});
