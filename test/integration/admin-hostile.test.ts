import { connect, type Socket } from 'node:net';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, ShuttleMetrics, createClient, createServer, startAdminServer, type AdminServer, type AdminServerOptions } from 'shuttle-rpc';
import { EchoService } from '../fixtures/services.js';
import type { ProviderStatus } from '../../src/metrics/reports.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The admin endpoint (metrics, health, fleet JSON, dashboard) as an attacker on this machine
 * or a web page in the operator's browser meets it: the headers of its answers, requests that
 * name another site's host (DNS rebinding), many or slow connections, huge headers, and
 * registry values full of quotes, backslashes and line breaks in the Prometheus text format,
 * read back with a real parser.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function admin(options: Partial<AdminServerOptions> = {}): Promise<AdminServer> {
  const server = await startAdminServer({ metrics: new ShuttleMetrics(), ...options });
  cleanups.push(() => server.close());
  return server;
}

/** One raw HTTP/1.1 exchange (fetch cannot set Host), resolved with the status and headers. */
function rawGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; head: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const head = data.split('\r\n\r\n', 1)[0] ?? '';
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head });
    });
    const lines = Object.entries({ connection: 'close', ...headers }).map(([key, value]) => `${key}: ${value}\r\n`);
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('')}\r\n`);
  });
}

/** Opens a socket to `url` and resolves once connected; `closed` tells whether the server has closed it. */
async function openSocket(url: string): Promise<{ socket: Socket; closed: () => boolean }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  cleanups.push(() => void socket.destroy());
  return { socket, closed: () => closed };
}

const providerStatus = (service: string, port: number, metadata: Record<string, unknown>): ProviderStatus => ({
  service,
  version: '1.0.0',
  group: '',
  address: `127.0.0.1:${port}`,
  protocol: 'tcp',
  weight: 100,
  metadata,
  load: undefined,
  inFlight: 0,
  averageLatencyMs: undefined,
  connection: 'ready',
  breaker: 'closed',
  ejected: false,
  ejectedUntil: undefined,
});

describe('the admin endpoint against hostile clients and values', () => {
  it('serves every answer with nosniff, no framing and no caching, and the dashboard with a policy that runs its own script only', async () => {
    const server = await admin();
    for (const path of ['/dashboard', '/metrics', '/fleet', '/providers', '/totals', '/admission', '/health/ready', '/nope']) {
      const response = await fetch(`${server.url}${path}`);
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(response.headers.get('x-frame-options'), path).toBe('DENY');
      expect(response.headers.get('cache-control'), path).toBe('no-store');
      expect(response.headers.get('referrer-policy'), path).toBe('no-referrer');
      const policy = response.headers.get('content-security-policy') ?? '';
      expect(policy, path).toContain("frame-ancestors 'none'");
      expect(policy, path).toContain("default-src 'none'");
      if (path === '/dashboard') {
        expect(policy).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'(;|$)/);
        expect(policy).not.toContain('unsafe-inline');
        expect(policy).toContain("connect-src 'self'");
      }
      await response.arrayBuffer();
    }
  });

  it('refuses a request that names another host than loopback (a DNS-rebinding page), unless the name is allowed', async () => {
    const server = await admin();
    const port = new URL(server.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`]) {
      expect((await rawGet(server.url, '/providers', { host })).status, host).toBe(200);
    }
    for (const host of [`attacker.example:${port}`, 'attacker.example', '10.0.0.1', `127.0.0.1.attacker.example:${port}`]) {
      expect((await rawGet(server.url, '/providers', { host })).status, host).toBe(421);
    }
    const allowing = await admin({ allowedHosts: ['gpu-node-1.internal'] });
    expect((await rawGet(allowing.url, '/metrics', { host: 'gpu-node-1.internal:9400' })).status).toBe(200);
    expect((await rawGet(allowing.url, '/metrics', { host: 'attacker.example' })).status).toBe(421);
    // Bound to all interfaces deliberately, any name (a scraper names the host as it knows it).
    const exposed = await admin({ host: '0.0.0.0' });
    expect((await rawGet(`http://127.0.0.1:${new URL(exposed.url).port}`, '/metrics', { host: 'gpu-node-1.internal' })).status).toBe(200);
  });

  it('holds at most maxConnections connections: one past it is answered 503 naming the limit and closed, and the endpoint answers after', async () => {
    const server = await admin({ maxConnections: 8 });
    const sockets: Array<{ socket: Socket; closed: () => boolean; data: () => string }> = [];
    for (let i = 0; i < 20; i++) {
      const opened = await openSocket(server.url);
      let data = '';
      opened.socket.setEncoding('latin1');
      opened.socket.on('data', (chunk: string) => (data += chunk));
      sockets.push({ ...opened, data: () => data });
    }
    await waitUntil(() => sockets.filter((socket) => socket.closed()).length >= 12, 'the connections past the limit to be closed');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sockets.filter((socket) => !socket.closed())).toHaveLength(8);
    for (const socket of sockets.filter((candidate) => candidate.closed())) {
      expect(socket.data()).toMatch(
        /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*retry-after: 1\r\n[\s\S]*\r\n\r\nthe admin endpoint has 8 connections open, its limit \(maxConnections\); retry later\n$/,
      );
    }
    for (const { socket } of sockets) socket.destroy();
    await waitUntil(
      async () =>
        (await fetch(`${server.url}/health/live`).then(
          (response) => response.status,
          () => 0,
        )) === 200,
      'the endpoint to answer again',
    );
  });

  it('closes a client that trickles its headers (slowloris) after slowClientMs, and refuses headers past 8 KiB', async () => {
    const server = await admin({ slowClientMs: 500 });
    const slow = await openSocket(server.url);
    slow.socket.write('GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n');
    const trickle = setInterval(() => slow.socket.write('x-slow: 1\r\n'), 100);
    cleanups.push(() => clearInterval(trickle));
    const started = performance.now();
    await waitUntil(() => slow.closed(), 'the slow client to be closed');
    expect(performance.now() - started).toBeLessThan(3_000);
    const huge = await rawGet(server.url, '/metrics', { host: '127.0.0.1', 'x-pad': 'a'.repeat(10 * 1024) });
    expect(huge.status).toBe(431);
  });

  it('closes a client that stops reading an answer once no byte has moved for 3 x slowClientMs, dropping what it had not taken', async () => {
    const metadata = { notes: 'n'.repeat(15_000) };
    const listed = Array.from({ length: 1000 }, (_, index) => providerStatus('inference.LLM', 1000 + index, metadata));
    const server = await admin({ slowClientMs: 200, clients: [{ providers: () => listed }] });
    const full = Buffer.byteLength(await (await fetch(`${server.url}/providers`)).text());
    expect(full).toBeGreaterThan(15_000_000);
    const { socket } = await openSocket(server.url);
    socket.write('GET /providers HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume();
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 3000))]);
    expect(received).toBeLessThan(full);
  });

  it('refuses an answer with 503 while answers past maxUnsentBytes wait for clients that do not read them, and serves again once they are gone', async () => {
    const metadata = { notes: 'n'.repeat(15_000) };
    const listed = Array.from({ length: 1000 }, (_, index) => providerStatus('inference.LLM', 1000 + index, metadata));
    const server = await admin({ maxUnsentBytes: 1024 * 1024, clients: [{ providers: () => listed }] });
    const stalled = await openSocket(server.url);
    stalled.socket.write('GET /providers HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    stalled.socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await fetch(`${server.url}/providers`);
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '1']);
    expect(await refused.text()).toMatch(/^the admin endpoint holds \d+ bytes of answers its clients have not read \(maxUnsentBytes 1048576\)/);
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    stalled.socket.destroy();
    await waitUntil(
      async () => (await fetch(`${server.url}/providers`).then((response) => response.arrayBuffer().then(() => response.status))) === 200,
      'the answer to be served again',
    );
  });

  it('builds what the dashboard polls at most once per 250 ms, however many tabs poll it', async () => {
    const metrics = new ShuttleMetrics();
    const listed = Array.from({ length: 50 }, (_, index) => providerStatus('inference.LLM', 1000 + index, { name: `w${index}` }));
    const server = await admin({ metrics, clients: [{ providers: () => listed }] });
    let builds = 0;
    const totals = metrics.providerTotals.bind(metrics);
    metrics.providerTotals = () => {
      builds += 1;
      return totals();
    };
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => fetch(`${server.url}/fleet`).then((response) => response.json() as Promise<{ providers: unknown[] }>)),
    );
    const elapsed = performance.now() - started;
    for (const answer of answers) expect(answer.providers).toHaveLength(50);
    expect(builds).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 1);
    expect(builds).toBeLessThan(5);
  });

  it('keeps serving when a watched client starts throwing while listing its providers: /fleet answers 500, the process goes on', async () => {
    let broken = false;
    const listed = [providerStatus('inference.LLM', 1000, { name: 'w' })];
    const server = await admin({
      clients: [
        {
          providers: () => {
            if (broken) throw new Error('listing failed');
            return listed;
          },
        },
      ],
    });
    broken = true;
    // Several samples (every 250 ms) run while it throws.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect((await fetch(`${server.url}/fleet`)).status).toBe(500);
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    broken = false;
    await waitUntil(async () => (await fetch(`${server.url}/fleet`)).status === 200, '/fleet to answer again');
  });

  it('spends at most about half its time on scrapes however fast they come: a burst shares one, and an answer is reused for as long as it took', async () => {
    const metrics = new ShuttleMetrics();
    let builds = 0;
    metrics.watchServer({
      url: 'shuttle://127.0.0.1:1',
      lastLoad: undefined,
      // A scrape of a large fleet: 40 ms of this process's CPU.
      get connections(): number {
        builds += 1;
        const until = performance.now() + 40;
        while (performance.now() < until) {
          // busy, as formatting a large exposition is
        }
        return 3;
      },
    });
    const server = await admin({ metrics });
    const burst = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/metrics`).then((response) => response.text())));
    for (const text of burst) expect(text).toContain('shuttle_provider_connections{provider="shuttle://127.0.0.1:1"} 3');
    expect(builds).toBeLessThanOrEqual(5);
    // Back to back for a second: a build, then as long again answered from it.
    builds = 0;
    const started = performance.now();
    let scrapes = 0;
    while (performance.now() - started < 1000) {
      await (await fetch(`${server.url}/metrics`)).text();
      scrapes += 1;
    }
    expect(builds * 40).toBeLessThan(700);
    expect(scrapes).toBeGreaterThan(builds);
  });

  it('keeps the exposition valid whatever the registry names hold: quotes, backslashes, line breaks, lone surrogates, 255 bytes', async () => {
    const metrics = new ShuttleMetrics();
    const names = ['a"b', 'back\\slash', 'line\nbreak # HELP x', '} 1\nfake_metric 2', 'lone\ud800surrogate', 'é'.repeat(127), '<img src=x onerror=alert(1)>'];
    const listed = names.map((name, index) => providerStatus(name, 1000 + index, {}));
    const server = await admin({ metrics, clients: [{ providers: () => listed }] });
    for (const [index, name] of names.entries()) {
      metrics.attempt({ service: name, method: name, provider: `127.0.0.1:${1000 + index}`, attempt: 2, code: 14, seconds: 0.01 });
      metrics.calls.inc({ side: 'consumer', service: name, method: name, code: 'OK' });
    }
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).not.toMatch(/^fake_metric/m);
    const families = parsePrometheusTextFormat(text);
    const services = (family: string): string[] =>
      (families.find((entry) => entry.name === family)?.metrics ?? []).map((metric) => (metric as { labels: Record<string, string> }).labels['service']!);
    // What went in comes out (a lone surrogate as U+FFFD, as UTF-8 has no other spelling for it).
    const expected = names.map((name) => name.replace('\ud800', '\ufffd'));
    for (const family of ['shuttle_calls_total', 'shuttle_consumer_provider_attempts_total', 'shuttle_consumer_breaker_state']) {
      expect(services(family).sort(), family).toEqual([...expected].sort());
    }
  });

  it('answers 500 without the reason when a scrape fails (the reason can name files and internals), and quotes at most 100 characters of a path it does not serve', async () => {
    const metrics = new ShuttleMetrics();
    metrics.watchServer({
      url: 'shuttle://127.0.0.1:1',
      lastLoad: undefined,
      get connections(): number {
        throw new Error('cannot read /etc/shuttle/secret-token.txt');
      },
    });
    const server = await admin({ metrics });
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(500);
    expect(await response.text()).not.toContain('secret-token');
    const missing = await fetch(`${server.url}/%3Cscript%3E${'x'.repeat(5000)}`);
    expect(missing.status).toBe(404);
    expect((await missing.text()).length).toBeLessThan(400);
  });

  it.each(['tcp', 'grpc'] as const)('over %s, a caller naming unknown services and methods adds no series to the provider metrics', async (transport) => {
    const metrics = new ShuttleMetrics();
    const server = await createServer({
      services: [new EchoService()],
      transport,
      registry: false,
      config: false,
      filters: [{ type: 'metrics', options: { metrics } }],
    });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: `shuttle://127.0.0.1:${server.port}`, transport, config: false, cluster: 'failfast' });
    cleanups.push(() => client.close());
    const before = (await metrics.text()).split('\n').length;
    const codes = new Set<number>();
    const failed = (error: { code: number }): void => void codes.add(error.code);
    for (let i = 0; i < 50; i++) {
      // No line break: HTTP/2 refuses one in a path before the provider sees it.
      const method = `m${i}<x>"\\`;
      await client.proxy<Record<string, (value: unknown) => Promise<unknown>>>('test.Echo', { version: '1.0.0' })[method]!(1).catch(failed);
      await client.proxy<Record<string, (value: unknown) => Promise<unknown>>>(`nope${i}.Svc`, { version: '1.0.0' }).echo!(1).catch(failed);
    }
    // The provider answered each (UNIMPLEMENTED), so the names did reach it.
    expect([...codes]).toEqual([RpcCode.UNIMPLEMENTED]);
    const text = await metrics.text();
    expect(text).not.toContain('nope');
    expect(text).not.toContain('m1<x>');
    expect(text.split('\n').length).toBe(before);
  });
});
