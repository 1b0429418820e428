import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

/**
 * A real etcd server for integration tests (Debian's etcd-server 3.4), on free loopback ports
 * with a temporary data dir. It can be stopped and started again on the same ports and data,
 * to play an outage; `kill()` and `remove()` clean up.
 */
export interface EtcdServer {
  /** `etcd://127.0.0.1:port` */
  readonly url: string;
  /** `http://127.0.0.1:port`, for etcd3 clients used by the test itself */
  readonly endpoint: string;
  readonly port: number;
  readonly running: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data dir. */
  remove(): Promise<void>;
  /** SIGSTOPs the server: hung, its sockets open and silent. */
  pause(): void;
  /** SIGCONTs a paused server. */
  resume(): void;
}

/** The etcd binary, or a clear failure saying how to get it. */
export function etcdBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') {
    throw new Error(
      'etcd is not installed: run `apt-get install -y etcd-server` (Debian package, etcd 3.4), or `npm test`, which installs it when run as root',
    );
  }
  return found;
}

/**
 * Starts an etcd on free ports; `extraListen` adds client addresses (e.g. a namespace
 * bridge's); `tlsDir` serves clients over TLS with tlsDir/server.{crt,key} (test/helpers/certs.ts).
 */
export async function startEtcd(options: { extraListen?: string[]; tlsDir?: string } = {}): Promise<EtcdServer> {
  etcdBinary(); // fails clearly before anything is made when etcd is missing
  const dataDir = await mkdtemp(path.join(tmpdir(), 'shuttle-etcd-'));
  const port = await freePort();
  const peerPort = await freePort();
  const scheme = options.tlsDir === undefined ? 'http' : 'https';
  const clientUrls = [`${scheme}://127.0.0.1:${port}`, ...(options.extraListen ?? []).map((host) => `${scheme}://${host}:${port}`)];
  const tlsArgs = options.tlsDir === undefined ? [] : ['--cert-file', `${options.tlsDir}/server.crt`, '--key-file', `${options.tlsDir}/server.key`];
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const member = spawnEtcd([
      '--name',
      'shuttle-test',
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      clientUrls.join(','),
      '--advertise-client-urls',
      clientUrls[0]!,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `shuttle-test=http://127.0.0.1:${peerPort}`,
      ...tlsArgs,
    ]);
    child = member.process;
    await member.healthy(`${scheme}://127.0.0.1:${port}`, options.tlsDir);
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    await killEtcd(running);
  };

  await start();
  liveServers.add(stop);
  return {
    url: `etcd://127.0.0.1:${port}`,
    endpoint: `${scheme}://127.0.0.1:${port}`,
    port,
    get running() {
      return child !== undefined && child.exitCode === null;
    },
    stop,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async remove() {
      await stop();
      liveServers.delete(stop);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A started etcd process; `healthy` waits until it answers /health (or fails saying why). */
export interface EtcdProcess {
  readonly process: ChildProcess;
  healthy(clientUrl: string, tlsDir?: string, timeoutMs?: number): Promise<void>;
}

/** Starts the etcd binary with `args` (plus `--log-level error`), keeping its last stderr for messages. */
export function spawnEtcd(args: readonly string[]): EtcdProcess {
  const child = spawn(etcdBinary(), [...args, '--log-level', 'error'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  return {
    process: child,
    async healthy(clientUrl, tlsDir, timeoutMs = 15_000) {
      const up = async (): Promise<boolean> => {
        if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${stderr}`);
        // Refused or unanswered while it starts: not up yet.
        return (await health(`${clientUrl}/health`, tlsDir).catch(() => undefined)) === 'true';
      };
      await waitUntil(up, () => `etcd to become healthy (stderr: ${stderr})`, timeoutMs, 100);
    },
  };
}

/** SIGKILLs `child` and resolves once it has exited. */
export async function killEtcd(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const liveServers = new Set<() => Promise<void>>();
process.once('exit', () => {
  for (const stop of liveServers) void stop();
});

/** Registers a stop function to run if the test process exits with etcd still running. */
export function stopAtExit(stop: () => Promise<void>): () => void {
  liveServers.add(stop);
  return () => liveServers.delete(stop);
}

/**
 * etcd's /health answer (`"true"` when healthy), over https with the test CA when given. One
 * connection per check, closed after it (no keep-alive pool): the chaos test counts this
 * process's sockets and must not find the helper's.
 */
function health(url: string, tlsDir: string | undefined): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const get = tlsDir === undefined ? http.get : https.get;
    get(url, { agent: false, ...(tlsDir === undefined ? {} : { ca: readFileSync(`${tlsDir}/ca.crt`) }) }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      // Answered once the socket is closed, not at the end of the body: a caller counting
      // sockets right after the check must not find this one still closing.
      response.on('end', () => {
        const answer = response.statusCode === 200 ? (JSON.parse(body) as { health?: string }).health : undefined;
        response.socket.once('close', () => resolve(answer)).destroy();
      });
    }).on('error', reject);
  });
}
