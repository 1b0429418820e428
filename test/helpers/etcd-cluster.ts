import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { etcdBinary, killEtcd, spawnEtcd, stopAtExit } from './etcd.js';
import { freePort } from './ports.js';
import { waitUntil } from './wait.js';

/**
 * A 3-member etcd cluster on loopback free ports (each member its own data dir), for tests
 * that kill the leader or take quorum away. Members can be SIGKILLed and started again on
 * the same ports and data.
 */
export interface EtcdCluster {
  /** `etcd://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3` */
  readonly url: string;
  /** `http://127.0.0.1:p` of each member, for the test's own etcd3 clients. */
  readonly endpoints: readonly string[];
  /** Index of the member that is leader now (asked of the running members); undefined without quorum. */
  leader(): Promise<number | undefined>;
  running(member: number): boolean;
  /** SIGKILLs one member. */
  kill(member: number): Promise<void>;
  /** Starts a killed member again; `waitHealthy` false when it cannot be healthy alone (no quorum yet). */
  start(member: number, waitHealthy?: boolean): Promise<void>;
  /** SIGSTOPs one member: a hung member, its sockets open and silent (not a dead one). */
  pause(member: number): void;
  /** SIGCONTs a paused member. */
  resume(member: number): void;
  /**
   * Stops every member, deletes their data and starts a new, empty cluster on the same ports:
   * every key and lease gone, the revision back to 1 (a cluster rebuilt from scratch).
   */
  wipe(): Promise<void>;
  /** Resolves once every running member says the cluster is healthy. */
  healthy(timeoutMs?: number): Promise<void>;
  /** Stops every member and deletes the data dirs. */
  remove(): Promise<void>;
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  child: ChildProcess | undefined;
  /** Whether the member has started once (its data dir holds the cluster). */
  started: boolean;
}

/** Starts the three members and waits until the cluster is healthy. */
export async function startEtcdCluster(): Promise<EtcdCluster> {
  etcdBinary();
  const members: Member[] = [];
  for (let index = 0; index < 3; index++) {
    members.push({
      name: `m${index}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      dataDir: await mkdtemp(path.join(tmpdir(), 'shuttle-etcd-cluster-')),
      child: undefined,
      started: false,
    });
  }
  const initialCluster = members.map((member) => `${member.name}=http://127.0.0.1:${member.peerPort}`).join(',');
  const endpoint = (member: Member): string => `http://127.0.0.1:${member.clientPort}`;

  const spawnMember = (member: Member): ReturnType<typeof spawnEtcd> => {
    const started = spawnEtcd([
      '--name',
      member.name,
      '--data-dir',
      member.dataDir,
      '--listen-client-urls',
      endpoint(member),
      '--advertise-client-urls',
      endpoint(member),
      '--listen-peer-urls',
      `http://127.0.0.1:${member.peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${member.peerPort}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      member.started ? 'existing' : 'new',
      '--initial-cluster-token',
      'shuttle-test-cluster',
      // Elections in about a second, as in a real deployment; loopback needs no longer.
      '--heartbeat-interval',
      '100',
      '--election-timeout',
      '1000',
    ]);
    member.child = started.process;
    member.started = true;
    return started;
  };
  const stopAll = async (): Promise<void> => {
    await Promise.all(members.map((member) => killEtcd(member.child)));
  };
  const forget = stopAtExit(stopAll);

  const cluster: EtcdCluster = {
    url: `etcd://${members.map((member) => `127.0.0.1:${member.clientPort}`).join(',')}`,
    endpoints: members.map(endpoint),
    async leader() {
      for (const member of members) {
        if (!cluster.running(members.indexOf(member))) continue;
        const status = await memberStatus(endpoint(member)).catch(() => undefined);
        if (status === undefined || status.leader === undefined || status.leader === '0') continue;
        for (const candidate of members) {
          if (!cluster.running(members.indexOf(candidate))) continue;
          const own = await memberStatus(endpoint(candidate)).catch(() => undefined);
          if (own?.header?.member_id === status.leader) return members.indexOf(candidate);
        }
      }
      return undefined;
    },
    running: (index) => {
      const child = members[index]!.child;
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async kill(index) {
      const member = members[index]!;
      await killEtcd(member.child);
      member.child = undefined;
    },
    async start(index, waitHealthy = true) {
      const started = spawnMember(members[index]!);
      if (waitHealthy) await started.healthy(endpoint(members[index]!));
    },
    pause(index) {
      members[index]!.child?.kill('SIGSTOP');
    },
    resume(index) {
      members[index]!.child?.kill('SIGCONT');
    },
    async wipe() {
      await stopAll();
      for (const member of members) {
        await rm(member.dataDir, { recursive: true, force: true });
        member.started = false;
      }
      const again = members.map(spawnMember);
      await Promise.all(again.map((started, index) => started.healthy(endpoint(members[index]!), undefined, 30_000)));
    },
    async healthy(timeoutMs = 15_000) {
      await Promise.all(members.map((member, index) => (cluster.running(index) ? spawnedHealth(member, timeoutMs) : Promise.resolve())));
    },
    async remove() {
      await stopAll();
      forget();
      await Promise.all(members.map((member) => rm(member.dataDir, { recursive: true, force: true })));
    },
  };

  /** Health of an already running member (same check as after a spawn). */
  const spawnedHealth = (member: Member, timeoutMs: number): Promise<void> =>
    waitUntil(async () => (await memberHealth(endpoint(member))) === 'true', `etcd member ${member.name} to become healthy`, timeoutMs, 100);

  // All three at once: none is healthy before a quorum of them is up.
  const spawned = members.map(spawnMember);
  await Promise.all(spawned.map((started, index) => started.healthy(endpoint(members[index]!), undefined, 30_000)));
  return cluster;
}

/** A member's status through etcd's JSON gateway: its own id and the leader's. */
function memberStatus(clientUrl: string): Promise<{ header?: { member_id?: string }; leader?: string }> {
  return post(`${clientUrl}/v3/maintenance/status`, '{}').then((body) => JSON.parse(body) as { header?: { member_id?: string }; leader?: string });
}

async function memberHealth(clientUrl: string): Promise<string | undefined> {
  const body = await get(`${clientUrl}/health`).catch(() => undefined);
  try {
    return body === undefined ? undefined : (JSON.parse(body) as { health?: string }).health;
  } catch {
    return undefined;
  }
}

function post(url: string, body: string): Promise<string> {
  return request(url, 'POST', body);
}

function get(url: string): Promise<string> {
  return request(url, 'GET');
}

function request(url: string, method: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: 1000 }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve(text));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
