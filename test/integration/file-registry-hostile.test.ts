import { execFileSync } from 'node:child_process';
import { constants, openSync, closeSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import dns from 'node:dns/promises';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RpcCode, createClient, createServer } from 'shuttle-rpc';
import { createFileRegistry, type FileRegistry } from '../../src/registry/file/file.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { startSteadyConsumer } from '../helpers/consumer-process.js';
import { fileSuite } from '../helpers/file-suite.js';
import { rejection } from '../helpers/wait.js';
import { providerRecord } from '../helpers/fake-transport.js';
import { isolatedTmpdir } from '../helpers/tmp.js';

/*
 * The file registry against what another process or another local user can put in its folder:
 * FIFOs, symbolic links, oversized and out-of-range records, and a squatted default folder.
 * Real files, real provider and consumer processes, real sockets.
 */
const { cleanups, folder, provider } = fileSuite();
/** A listener standing in for a planted provider: counts connections, keeps what they send. */
async function trap(): Promise<{ port: number; connections: () => number; received: () => string }> {
  let connections = 0;
  let received = '';
  const server = net.createServer((socket) => {
    connections++;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, received: () => received };
}
function record(port: number, weight: unknown = 100): Record<string, unknown> {
  // weight as given: the hostile cases write values no provider would.
  return { ...providerRecord(port, { host: '127.0.0.1', methods: [{ name: 'pid', stream: false, idempotent: true }] }), weight };
}
const recordFile = (dir: string, port: number | string): string => path.join(dir, 'services', 'test.Echo', `1.0.0@_@127.0.0.1%3A${port}.json`);
/** Settles within `ms`, or reports that it hung. */
function within<T>(ms: number, promise: Promise<T>): Promise<T | 'hung'> {
  return Promise.race([promise, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref())]);
}
/** Releases any thread blocked opening `fifo` for reading (by opening it for writing), so a failure cannot hang the run. */
function releaseFifo(fifo: string): void {
  for (let i = 0; i < 16; i++) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      return; // ENXIO: no reader left; ENOENT: gone
    }
  }
}

describe('file registry: only regular files, checked records', () => {
  it('a FIFO, a symlink and bad records never block discovery, the thread pool or a new consumer', async () => {
    const dir = await folder();
    const first = await provider(dir);
    const consumer = await startSteadyConsumer(`file://${dir}`);
    cleanups.push(() => consumer.child.stop());
    const bait = await trap();
    // Named as records are, so that they are read (other names are not even opened).
    const fifo = recordFile(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    cleanups.push(() => releaseFifo(fifo));
    await symlink('/etc/passwd', recordFile(dir, 'link'));
    // Ten thousand planted files of other names are not read, and hide nothing.
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => writeFile(path.join(dir, 'services', 'test.Echo', `${String(i).padStart(7, '0')}.json`), '')));
    await writeFile(recordFile(dir, 'weight'), JSON.stringify(record(bait.port, 1e308)));
    await writeFile(recordFile(dir, 'infinite'), JSON.stringify(record(bait.port)).replace('"weight":100', '"weight":1e999'));
    await writeFile(recordFile(dir, 'port'), JSON.stringify(record(70000)));
    await writeFile(recordFile(dir, 'huge'), JSON.stringify({ ...record(bait.port), metadata: { blob: 'x'.repeat(100_000) } }));

    // Four subscriptions in this process: each would hold a thread-pool thread on the FIFO.
    const registries = Array.from({ length: 4 }, () => createFileRegistry({ url: `file://${dir}` }) as FileRegistry);
    cleanups.push(() => Promise.all(registries.map((registry) => registry.close())));
    let seen: string[] = [];
    const subscribed = await within(
      1000,
      Promise.all(
        registries.map((registry) =>
          registry.subscribe({ service: 'test.Echo' }, (list) => (seen = list.map((instance) => `${instance.host}:${instance.port}`))),
        ),
      ),
    );
    expect(subscribed, 'four subscriptions').not.toBe('hung');
    expect(seen).toEqual([`127.0.0.1:${first.port}`]);
    expect(registries[0]!.rejectedEntries).toBe(6);
    expect(await within(1000, dns.lookup('localhost')), 'dns.lookup on the thread pool').not.toBe('hung');

    // A new consumer starts and calls the real provider only.
    const client = await createClient({ registry: `file://${dir}`, config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    const pids = await within(3000, Promise.all(Array.from({ length: 40 }, () => echo.pid())));
    expect(pids).toEqual(Array.from({ length: 40 }, () => first.process.pid));
    expect(bait.connections()).toBe(0);

    // The running consumer follows a replacement: the first provider leaves, a second comes,
    // and within a second or two every call goes to the second (none to the dead address).
    const second = await provider(dir);
    await first.stop();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const report = await consumer.finish();
    expect(report.pids).toContain(second.process.pid);
    expect(report.okStreak, report.errors.join('; ')).toBeGreaterThanOrEqual(20);
  });
});

describe('file registry: a folder that stops being private is not read', () => {
  it('a running view ignores what is planted after the folder is deleted and recreated world-writable, or swapped for a link', async () => {
    const dir = await folder();
    const real = await provider(dir);
    const bait = await trap();
    const registry = createFileRegistry({ url: `file://${dir}`, pollMs: 50 }) as FileRegistry;
    cleanups.push(() => registry.close());
    let seen: string[] = [];
    await registry.subscribe({ service: 'test.Echo' }, (list) => (seen = list.map((instance) => `${instance.host}:${instance.port}`)));
    expect(seen).toEqual([`127.0.0.1:${real.port}`]);
    // Someone deletes the folder and recreates it open to everyone, with a record of their own.
    await rm(dir, { recursive: true, force: true });
    await mkdir(path.join(dir, 'services', 'test.Echo'), { recursive: true });
    await chmod(dir, 0o777);
    await writeFile(recordFile(dir, bait.port), JSON.stringify(record(bait.port)));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen).not.toContain(`127.0.0.1:${bait.port}`);
    // The same folder made a link to an open one.
    const open = await mkdtemp(path.join(tmpdir(), 'shuttle-open-'));
    cleanups.push(() => rm(open, { recursive: true, force: true }));
    await mkdir(path.join(open, 'services', 'test.Echo'), { recursive: true });
    await writeFile(recordFile(open, bait.port), JSON.stringify(record(bait.port)));
    // The provider's heartbeat (and the view's own check) may recreate the folder between the
    // two steps: try again until the link is in its place.
    for (let attempt = 0; ; attempt++) {
      await rm(dir, { recursive: true, force: true });
      try {
        await symlink(open, dir);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 50) throw error;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen).not.toContain(`127.0.0.1:${bait.port}`);
  });
});

describe('file registry: the default folder belongs to its user', () => {
  /** Points the default folder at a fresh temp dir (TMPDIR; no XDG_RUNTIME_DIR) for one test. */
  async function isolatedDefault(): Promise<string> {
    const { base, restore } = await isolatedTmpdir();
    cleanups.push(restore);
    return path.join(base, `shuttle-registry-${process.getuid!()}`);
  }

  it('a folder squatted by someone else (world-writable, or another owner) is refused, and no call or token reaches the planted record', async () => {
    const squatted = await isolatedDefault();
    const bait = await trap();
    // The squatter plants under every name the folder could have: the uid, the user name.
    for (const folderName of [squatted, path.join(path.dirname(squatted), `shuttle-registry-${userInfo().username}`)]) {
      await mkdir(path.join(folderName, 'services', 'test.Echo'), { recursive: true });
      await chmod(folderName, 0o777);
      await writeFile(recordFile(folderName, bait.port), JSON.stringify(record(bait.port)));
    }
    const token = 'squatter-wants-this-token';

    const client = await createClient({ token, timeoutMs: 2000, config: false });
    cleanups.push(() => client.close());
    const error = await rejection(client.proxy<EchoApi>('test.Echo').pid());
    expect(bait.received()).not.toContain(token);
    expect(bait.connections()).toBe(0);
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toContain(`file registry ${squatted} is not safe to use: it is writable by its group or by everyone (mode 0777)`);
    await expect(createServer({ services: [new EchoService()], config: false })).rejects.toThrow(/is not safe to use/);

    // Owned by another user, even with a private mode.
    await chmod(squatted, 0o700);
    await chown(squatted, 65534, 65534);
    const other = await createClient({ token, timeoutMs: 2000, config: false });
    cleanups.push(() => other.close());
    expect((await rejection(other.proxy<EchoApi>('test.Echo').pid())).message).toContain('is owned by uid 65534, not by this user');

    expect(bait.connections()).toBe(0);
    expect(bait.received()).not.toContain(token);
  });

  it('is created private (0700) by its first provider: under $XDG_RUNTIME_DIR when set, else named with the uid', async () => {
    const expected = await isolatedDefault();
    const server = await createServer({ services: [new EchoService()], config: false });
    cleanups.push(() => server.close());
    const info = await stat(expected);
    expect({ mode: (info.mode & 0o777).toString(8), uid: info.uid }).toEqual({ mode: '700', uid: process.getuid!() });

    const runtime = await mkdtemp(path.join(tmpdir(), 'shuttle-xdg-'));
    cleanups.push(() => rm(runtime, { recursive: true, force: true }));
    process.env['XDG_RUNTIME_DIR'] = runtime;
    // A consumer only reads: it finds nobody and makes no folder.
    const client = await createClient({ config: false, timeoutMs: 500 });
    cleanups.push(() => client.close());
    await rejection(client.proxy<EchoApi>('test.Echo').pid());
    await expect(stat(path.join(runtime, 'shuttle-registry'))).rejects.toMatchObject({ code: 'ENOENT' });
    const second = await createServer({ services: [new EchoService()], config: false });
    cleanups.push(() => second.close());
    expect(((await stat(path.join(runtime, 'shuttle-registry'))).mode & 0o777).toString(8)).toBe('700');
  });
});
