import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type RpcClient } from 'shuttle-rpc';
import { startFixture, type Child } from '../helpers/process.js';
import { openSockets } from '../helpers/sockets.js';
import { tempDir } from '../helpers/tmp.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * What a registry can make a consumer dial and hold. A provider process listens on 0.0.0.0, so
 * each of 127.0.0.0/8's addresses reaches it: 1,000 "providers" of one service cost one
 * process. The consumer runs in the test process and its sockets are counted there.
 */

interface EchoApi {
  echo(value: unknown): Promise<unknown>;
}

/** `count` distinct loopback addresses at `port` (127.0.x.y, from 127.0.1.1). */
function addresses(count: number, port: number, second = 0): string[] {
  return Array.from({ length: count }, (_, i) => `127.${second}.${1 + (i >> 8)}.${1 + (i & 255)}:${port}`);
}

let provider: Child;
const clients: RpcClient[] = [];

beforeAll(async () => {
  provider = await startFixture('provider', { SHUTTLE_HOST: '0.0.0.0' });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await provider?.stop();
});

async function consumer(list: readonly string[], options: Parameters<typeof createClient>[0] = {}): Promise<EchoApi> {
  const client = await createClient({ registry: `shuttle://${list.join(',')}`, log: false, config: false, ...options });
  clients.push(client);
  return client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
}

/** Runs `command` to its end with `env` added; expects exit code 0 and returns its last line of output, parsed as JSON. */
/**
 * 100 callers calling `echo` in a loop for `ms` beside addresses on `port` that do not answer:
 * what was answered and failed, and after `lateAfterMs`; the most sockets open to `port` at once
 * (sampled every 50 ms).
 */
async function callsBeside(
  echo: EchoApi,
  port: number,
  ms: number,
  lateAfterMs: number,
): Promise<{ mostConnecting: number; answered: number; failed: number; lateAnswered: number; lateFailed: number }> {
  const counts = { mostConnecting: 0, answered: 0, failed: 0, lateAnswered: 0, lateFailed: 0 };
  const sampler = setInterval(() => {
    counts.mostConnecting = Math.max(counts.mostConnecting, openSockets(port));
  }, 50);
  const start = Date.now();
  const end = start + ms;
  try {
    await Promise.all(
      Array.from({ length: 100 }, async (_, worker) => {
        for (let i = 0; Date.now() < end; i++) {
          const late = Date.now() - start > lateAfterMs;
          try {
            await echo.echo(worker * 1000 + i);
            counts.answered++;
            if (late) counts.lateAnswered++;
          } catch {
            counts.failed++;
            if (late) counts.lateFailed++;
          }
        }
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  return counts;
}

async function lastReport(command: string, args: string[], env: Record<string, string>): Promise<unknown> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, err).toBe(0);
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

describe('a consumer of a large fleet', () => {
  it.each(['p2c', 'least-active'])(
    '1,000 providers called with %s: at most maxConnections sockets, every call answered, idle ones closed',
    async (loadbalance) => {
      const baseline = openSockets(provider.port);
      const echo = await consumer(addresses(1000, provider.port), { loadbalance, maxConnections: 100, idleTimeoutMs: 400 });
      let most = 0;
      let answered = 0;
      for (let round = 0; round < 40; round++) {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => echo.echo(round * 50 + i)));
        answered += answers.length;
        most = Math.max(most, openSockets(provider.port) - baseline);
      }
      expect(answered).toBe(2000);
      // Without the cap: one socket per provider ever called (980-1,000 here).
      expect(most).toBeLessThanOrEqual(100);
      // Unused for the idle timeout (0.4-0.8 s): closed.
      await waitUntil(() => openSockets(provider.port) - baseline === 0, 'the idle connections closed', 3000);
    },
    60_000,
  );
});

describe('a consumer under a low open-file limit', () => {
  it('1,000 providers called with p2c under ulimit -n 256: no call, file read or listen fails EMFILE', async () => {
    const script = fileURLToPath(new URL('../../build/test/fixtures/fd-consumer.js', import.meta.url));
    const report = await lastReport('prlimit', ['--nofile=256:256', process.execPath, script], {
      DIAL_REGISTRY: `shuttle://${addresses(1000, provider.port).join(',')}`,
    });
    // Without a cap fitted to the fd limit: 50 calls failed EMFILE, 55 of 60 file reads failed
    // and the listener could not open.
    expect(report).toEqual({ answered: 3000, failed: 0, lastError: '', fileErrors: 0 });
  }, 60_000);
});

describe('addresses that do not answer', () => {
  it('are not reconnected in the background: no connect while no call goes there, and no timer per address', async () => {
    let accepts = 0;
    const slammer = net.createServer((socket) => {
      accepts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => slammer.listen(0, '0.0.0.0', resolve));
    const port = (slammer.address() as net.AddressInfo).port;
    try {
      const list = addresses(200, port, 0);
      const echo = await consumer(list, { reconnect: { initialMs: 50, maxMs: 200 }, timeoutMs: 2000, cluster: 'failfast' });
      const timersBefore = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      await Promise.all(Array.from({ length: 400 }, (_, i) => echo.echo(i).catch(() => undefined)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const after = accepts;
      expect(after).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // Without the fix each failed address reconnected every 50-200 ms: about 1,000 accepts a second.
      expect(accepts - after).toBe(0);
      const timers = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      expect(timers - timersBefore).toBeLessThan(10);
    } finally {
      await new Promise((resolve) => slammer.close(resolve));
    }
  }, 30_000);
});

describe('addresses that black-hole connects', () => {
  it('500 of them beside 4 good providers: at most maxConnecting connects under way, and calls find the good ones', async () => {
    const hole = await startFixture('dial-target', {}, 10_000, [], ['black-hole']);
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const good = addresses(4, provider.port, 0);
      const list = [...addresses(500, hole.port, 1), ...good];
      const echo = await consumer(list, { timeoutMs: 2000, connectTimeoutMs: 500, maxConnecting: 32 });
      const { mostConnecting, answered, failed, lateAnswered, lateFailed } = await callsBeside(echo, hole.port, 10_000, 6000);
      // Without the bound, every call in flight held a connect of its own: 100 at once here, and
      // as many as the callers of a busy consumer.
      expect(mostConnecting).toBeLessThanOrEqual(32 + 2);
      expect(answered).toBeGreaterThan(0);
      // Once some providers are connected, calls go to them while the connect slots are taken.
      expect(lateAnswered / (lateAnswered + lateFailed), `answered ${answered}, failed ${failed}; after 6 s ${lateAnswered}/${lateFailed}`).toBeGreaterThan(
        0.9,
      );
    } finally {
      await hole.stop(0);
    }
  }, 60_000);
});

describe('grpc channels', () => {
  it('to addresses that refuse are not reconnected in the background: no connect while no call goes there', async () => {
    let accepts = 0;
    const slammer = net.createServer((socket) => {
      accepts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => slammer.listen(0, '0.0.0.0', resolve));
    const port = (slammer.address() as net.AddressInfo).port;
    try {
      const echo = await consumer(addresses(200, port, 0), {
        transport: 'grpc',
        reconnect: { initialMs: 50, maxMs: 200 },
        // Long enough that no call gives up while its connect waits for a slot (on two busy
        // cores): a connect that starts after every call is over would be counted below.
        timeoutMs: 10_000,
        cluster: 'failfast',
      });
      await Promise.all(Array.from({ length: 200 }, (_, i) => echo.echo(i).catch(() => undefined)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const after = accepts;
      expect(after).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // grpc-js reconnects a failed channel by itself, after its own backoff (50-200 ms here).
      expect(accepts - after).toBe(0);
    } finally {
      await new Promise((resolve) => slammer.close(resolve));
    }
  }, 30_000);

  it('500 addresses that accept and never start HTTP/2, beside 4 good providers: at most maxConnecting connects under way, calls find the good ones, and nothing stays open', async () => {
    const silent = await startFixture('dial-target', {}, 10_000, [], ['silent']);
    const good = await startFixture('provider', { SHUTTLE_HOST: '0.0.0.0', PROVIDER_TRANSPORT: 'grpc' });
    try {
      const list = [...addresses(500, silent.port, 1), ...addresses(4, good.port, 0)];
      const echo = await consumer(list, { transport: 'grpc', timeoutMs: 2000, connectTimeoutMs: 500, maxConnecting: 32 });
      const { mostConnecting, lateAnswered, lateFailed } = await callsBeside(echo, silent.port, 6000, 4000);
      // Without the gate each call's channel connected on its own: every address picked held a
      // socket, and kept it (grpc-js gives a connect no time limit).
      expect(mostConnecting).toBeLessThanOrEqual(32 + 2);
      // Most, not all: a silent address whose backoff has ended is tried again by the calls that
      // pick it, each waiting up to connectTimeoutMs (as over tcp); 86-97 % on two busy cores.
      expect(lateAnswered / (lateAnswered + lateFailed), `after 4 s ${lateAnswered} answered, ${lateFailed} failed`).toBeGreaterThan(0.8);
      // Connects given up on closed their sockets.
      await waitUntil(() => openSockets(silent.port) === 0, 'no socket left to the silent addresses', 3000);
    } finally {
      await Promise.all([silent.stop(0), good.stop()]);
    }
  }, 60_000);

  it('idle channels are closed after idleTimeoutMs, and the next call connects again', async () => {
    const good = await startFixture('provider', { SHUTTLE_HOST: '0.0.0.0', PROVIDER_TRANSPORT: 'grpc' });
    try {
      const echo = await consumer(addresses(4, good.port, 0), { transport: 'grpc', idleTimeoutMs: 400 });
      await Promise.all(Array.from({ length: 40 }, (_, i) => echo.echo(i)));
      expect(openSockets(good.port)).toBeGreaterThan(0);
      await waitUntil(() => openSockets(good.port) === 0, 'the idle channels closed', 3000);
      await expect(echo.echo('again')).resolves.toBe('again');
    } finally {
      await good.stop();
    }
  }, 30_000);
});

/** Whether this process may give a child its own /etc/resolv.conf (root, with unshare). */
function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('host names in records', () => {
  const unshare = canUnshare();
  if (!unshare) console.warn('dial.test.ts: not root or no unshare(1): the host-name test cannot give a consumer a resolver of its own and does not run');

  it.skipIf(!unshare)(
    '40 names whose resolver never answers, beside a provider at an IP address: the rest of the process still looks names up, and calls reach the provider',
    async () => {
      // A resolver that drops every query: each lookup of these names takes its whole 2 s timeout.
      const resolver = dgram.createSocket('udp4');
      resolver.on('message', () => {});
      await new Promise<void>((resolve) => resolver.bind(53, '127.0.0.99', resolve));
      const dir = await tempDir();
      try {
        const conf = `${dir.dir}/resolv.conf`;
        writeFileSync(conf, 'nameserver 127.0.0.99\noptions timeout:2 attempts:1\n');
        const names = Array.from({ length: 40 }, (_, i) => `slow-${i}.example:${provider.port}`);
        const script = fileURLToPath(new URL('../../build/test/fixtures/lookup-consumer.js', import.meta.url));
        const seen = (await lastReport('unshare', ['-m', 'sh', '-c', `mount --bind "$0" /etc/resolv.conf && exec "$1" "$2"`, conf, process.execPath, script], {
          DIAL_REGISTRY: `shuttle://${[...names, `127.0.0.1:${provider.port}`].join(',')}`,
          DIAL_MS: '8000',
        })) as { answered: number; failed: number; slowestLookupMs: number; lookups: number };
        // Without a bound, each connect by name queued one more lookup on libuv's two threads for
        // them: the process's own lookup of localhost waited behind dozens of 2 s lookups.
        expect(seen.slowestLookupMs, JSON.stringify(seen)).toBeLessThan(1000);
        expect(seen.answered, JSON.stringify(seen)).toBeGreaterThan(100);
      } finally {
        resolver.close();
        await dir.remove();
      }
    },
    60_000,
  );
});

describe('addresses of another protocol', () => {
  it.each(['http', 'banner'])('a %s server: the call fails UNAVAILABLE, never sent, so it may go to another provider', async (mode) => {
    const target = await startFixture('dial-target', {}, 10_000, [], [mode]);
    try {
      const echo = await consumer([`127.0.0.1:${target.port}`], { cluster: 'failfast' });
      const error = await rejection(echo.echo(1));
      // Without the fix: INTERNAL with maybeExecuted, which no strategy retries.
      expect(error).toMatchObject({ code: RpcCode.UNAVAILABLE, message: expect.stringContaining('does not speak the shuttle protocol') });
      expect(error.details).toMatchObject({ neverSent: true });
    } finally {
      await target.stop(0);
    }
  });
});
