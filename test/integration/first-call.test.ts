import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcError, type ClientOptions, type Proxied, type RpcClient } from 'shuttle-rpc';
import type { LoadBalancer, ProviderView } from 'shuttle-rpc/spi';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The first call of a fresh client while one of three providers (real processes, file
 * registry) is dead, hung, overloaded or draining — and the registry view of the client has
 * not caught up: the consumers read the registry with a long TTL and no re-polling, as a
 * client created just before the fault would. docs/FAULTS.md's table is this file's results.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Fleet {
  readonly registry: string;
  readonly journal: string;
  readonly providers: Child[];
}

async function fleet(env: Record<string, string> = {}): Promise<Fleet> {
  const tmp = await tempDir();
  cleanups.push(tmp.remove);
  const registry = `file://${tmp.dir}/registry`;
  const journal = path.join(tmp.dir, 'journal');
  const providers: Child[] = [];
  // One at a time: three node processes starting at once on a loaded runner can take 10 s.
  for (let i = 0; i < 3; i++) {
    const child = await startFixture('provider', { SHUTTLE_REGISTRY: registry, PROVIDER_JOURNAL: journal, ...(i === 0 ? env : {}) });
    cleanups.push(() => {
      child.process.kill('SIGCONT');
      return child.stop(500);
    });
    providers.push(child);
  }
  return { registry, journal, providers };
}

/** The worst case for a first call: the balancer picks `bad` whenever it is a candidate. */
function worstFirst(bad: Child): LoadBalancer {
  const address = `${bad.host}:${bad.port}`;
  return {
    name: 'worst-first',
    select: (views: readonly ProviderView[]) => ({
      provider: views.find((view) => view.address === address) ?? views[0]!,
      policy: 'worst-first',
      branch: 'pick',
    }),
  };
}

/**
 * A fresh client that has read the registry (all three providers) and made no call yet; its
 * registry view keeps every record it read (no TTL expiry, no re-poll).
 */
async function freshClient(fleetOf: Fleet, options: ClientOptions): Promise<{ client: RpcClient; echo: Proxied<EchoApi>; routes: string[] }> {
  /** Where each attempt was sent, in order (`host:port`). */
  const routes: string[] = [];
  const client = await createClient({
    registry: { type: 'file', options: { url: fleetOf.registry, ttlMs: 600_000, pollMs: 60_000 } },
    config: false,
    log: false,
    onRoute: (event) => routes.push(event.decision.provider.address),
    ...options,
  });
  cleanups.push(() => client.close());
  const echo = client.proxy<EchoApi>('test.Echo');
  await client.ready();
  expect(client.providers()).toHaveLength(3);
  return { client, echo, routes };
}

describe('a fresh client, one of three providers SIGKILLed just before its first call', () => {
  it('100 fresh clients in a row: no idempotent call fails, no non-idempotent call runs twice', async () => {
    const f = await fleet();
    const dead = f.providers[0]!;
    const deadAddress = `${dead.host}:${dead.port}`;
    let idempotentFailed = 0;
    let nonIdempotentFailed = 0;
    let hitDead = 0;
    for (let i = 0; i < 100; i++) {
      const { client, echo, routes } = await freshClient(f, { timeoutMs: 5000 });
      // Dies once, after the first client was made; every later client reads its record too.
      if (i === 0) {
        dead.process.kill('SIGKILL');
        await new Promise((resolve) => dead.process.once('exit', resolve));
      }
      // Half the clients make the idempotent call first, half the non-idempotent one.
      const idempotent = () => echo.work({ ms: 1 }).catch(() => void idempotentFailed++);
      const nonIdempotent = () => echo.record({ id: `call-${i}`, ms: 1 }).catch(() => void nonIdempotentFailed++);
      if (i % 2 === 0) await Promise.all([idempotent(), nonIdempotent()]);
      else await Promise.all([nonIdempotent(), idempotent()]);
      hitDead += routes.filter((address) => address === deadAddress).length;
      await client.close();
    }
    const journal = (await readFile(f.journal, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[0]!);
    const duplicates = journal.filter((id, index) => journal.indexOf(id) !== index);
    console.log(
      `fresh clients: ${hitDead} attempts on the dead provider, ${idempotentFailed} idempotent and ${nonIdempotentFailed} non-idempotent failed, ${journal.length} executions`,
    );
    expect(idempotentFailed).toBe(0);
    expect(duplicates).toEqual([]);
    // Refused before sending, a non-idempotent call is retried elsewhere too: all ran, once.
    expect(nonIdempotentFailed).toBe(0);
    expect(journal).toHaveLength(100);
    // The dead provider was really in the way (random picks: about a third of first attempts).
    expect(hitDead).toBeGreaterThan(10);
    // About 8 s on an idle machine: 100 clients made one after the other, and 3 processes.
  }, 120_000);
});

type Fault = 'dead' | 'hung' | 'overloaded' | 'draining';

const STRATEGIES = {
  failover: 'failover',
  failfast: 'failfast',
  failsafe: { type: 'failsafe', options: { log: () => {} } },
  failback: { type: 'failback', options: { log: () => {}, intervalMs: 600_000 } },
  forking: { type: 'forking', options: { hedgeDelayMs: 50 } },
  broadcast: 'broadcast',
} as const;

/** What the first call of each strategy's fresh client gives: `ok`, `absorbed` (resolved undefined) or the code's name. */
const EXPECTED: Record<Fault, Record<keyof typeof STRATEGIES, string>> = {
  dead: { failover: 'ok', failfast: 'ok', failsafe: 'ok', failback: 'ok', forking: 'ok', broadcast: 'UNAVAILABLE' },
  hung: {
    failover: 'DEADLINE_EXCEEDED',
    failfast: 'DEADLINE_EXCEEDED',
    failsafe: 'absorbed',
    failback: 'absorbed',
    forking: 'ok',
    broadcast: 'DEADLINE_EXCEEDED',
  },
  overloaded: {
    failover: 'ok',
    failfast: 'RESOURCE_EXHAUSTED',
    failsafe: 'RESOURCE_EXHAUSTED',
    failback: 'RESOURCE_EXHAUSTED',
    forking: 'ok',
    broadcast: 'RESOURCE_EXHAUSTED',
  },
  draining: { failover: 'ok', failfast: 'ok', failsafe: 'ok', failback: 'ok', forking: 'ok', broadcast: 'UNAVAILABLE' },
};

/** Holds `child`'s one slot (or keeps its drain waiting) with a long call, through a client of its own. */
async function occupy(f: Fleet, child: Child): Promise<void> {
  const holder = await createClient({ registry: f.registry, config: false, log: false, timeoutMs: 60_000 });
  cleanups.push(() => holder.close());
  const echo = holder.proxy<EchoApi>('test.Echo', { url: child.url });
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  void echo.sleep({ ms: 30_000 }, { signal: controller.signal }).catch(() => {});
  // Running once the provider counts it — or refuses anything else for want of a slot.
  const running = () =>
    echo.invocations().then(
      (counts) => (counts['sleep'] ?? 0) > 0,
      (error: RpcError) => error.code === RpcCode.RESOURCE_EXHAUSTED,
    );
  await waitUntil(running, `the long call to occupy ${child.url}`, 2000, 20);
}

async function injectFault(fault: Fault, f: Fleet): Promise<void> {
  const bad = f.providers[0]!;
  if (fault === 'dead') {
    bad.process.kill('SIGKILL');
    await new Promise((resolve) => bad.process.once('exit', resolve));
  } else if (fault === 'hung') {
    bad.process.kill('SIGSTOP');
  } else if (fault === 'overloaded') {
    await occupy(f, bad);
  } else {
    await occupy(f, bad);
    bad.process.kill('SIGTERM');
    // Draining: records removed, GOAWAY sent, new calls refused; the long call keeps it alive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(bad.process.exitCode).toBeNull();
  }
}

describe.each(Object.keys(EXPECTED) as Fault[])('the first call of a fresh client with one of three providers %s', (fault) => {
  it('gives, per cluster strategy, the outcome docs/FAULTS.md states', async () => {
    const f = await fleet(fault === 'overloaded' ? { PROVIDER_MAX_CONCURRENT: '1' } : {});
    const bad = f.providers[0]!;
    const clients = await Promise.all(
      Object.entries(STRATEGIES).map(
        async ([name, cluster]) => [name, await freshClient(f, { cluster, loadbalance: worstFirst(bad), timeoutMs: 1500 })] as const,
      ),
    );
    await injectFault(fault, f);
    const outcomes: Record<string, string> = {};
    await Promise.all(
      clients.map(async ([name, { echo, routes }]) => {
        outcomes[name] = await echo.echo('first').then(
          (value) => (value === 'first' ? 'ok' : value === undefined ? 'absorbed' : `unexpected ${String(value)}`),
          (error: RpcError) => Object.entries(RpcCode).find(([, code]) => code === error.code)?.[0] ?? String(error.code),
        );
        // The worst case was really exercised: the first attempt went to the bad provider
        // (broadcast sends to every provider without a pick).
        if (name !== 'broadcast') expect(routes[0], name).toBe(`${bad.host}:${bad.port}`);
      }),
    );
    expect(outcomes).toEqual(EXPECTED[fault]);
    // Three provider processes started one after the other, and a 1.5 s deadline to wait out.
  }, 60_000);
});
