import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, ShuttleMetrics, createClient, createServer, startAdminServer } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { StreamService, type StreamApi } from '../fixtures/stream-service.js';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * The metrics filter on both sides of real calls over loopback sockets, scraped from the admin
 * endpoint over HTTP the way Prometheus would.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The value of one series in a Prometheus text exposition, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    const have = inner.split(',');
    if (wanted.every((pair) => have.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

describe('metrics and the admin endpoint', () => {
  it('counts real unary and streaming calls by outcome on both sides', async () => {
    const providerMetrics = new ShuttleMetrics();
    const consumerMetrics = new ShuttleMetrics();
    const client = await createClient({
      registry: `memory://metrics-${process.pid}`,
      filters: [{ type: 'metrics', options: { metrics: consumerMetrics } }],
      onRoute: (event) => consumerMetrics.route(event),
      config: false,
    });
    cleanups.push(() => client.close());
    const server = await createServer({
      services: [new EchoService(), new StreamService(client)],
      registry: `memory://metrics-${process.pid}`,
      filters: [{ type: 'metrics', options: { metrics: providerMetrics } }],
      config: false,
    });
    cleanups.push(() => server.close());
    const admin = await startAdminServer({ metrics: consumerMetrics });
    cleanups.push(() => admin.close());
    expect(admin.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const echo = client.proxy<EchoApi>('test.Echo');
    for (let i = 0; i < 3; i++) expect(await echo.add({ a: i, b: 1 })).toEqual({ sum: i + 1 });
    const failure = await rejection(echo.fail({ code: RpcCode.NOT_FOUND, message: 'nope' }));
    expect(failure.code).toBe(RpcCode.NOT_FOUND);
    const chunks: unknown[] = [];
    const streamApi = client.proxy<StreamApi>('test.Stream');
    const call = streamApi.count({ n: 5 });
    for await (const chunk of call) chunks.push(chunk);
    expect(chunks).toHaveLength(5);
    expect(await call.trailer).toEqual({ count: 5 });
    // A reader that stops early still ends the stream (the counting wrapper passes return on).
    for await (const chunk of streamApi.count({ n: 1_000, delayMs: 1 })) {
      if ((chunk as { i: number }).i === 1) break;
    }
    const after = streamApi.count({ n: 1 });
    const afterChunks: unknown[] = [];
    for await (const chunk of after) afterChunks.push(chunk);
    expect(afterChunks).toEqual([{ i: 0 }]);
    expect(await after.trailer).toEqual({ count: 1 });

    const text = await scrape(admin.url);
    const consumer = { side: 'consumer', service: 'test.Echo' };
    expect(sample(text, 'shuttle_calls_total', { ...consumer, method: 'add', code: 'OK' })).toBe(3);
    expect(sample(text, 'shuttle_calls_total', { ...consumer, method: 'fail', code: 'NOT_FOUND' })).toBe(1);
    expect(sample(text, 'shuttle_call_seconds_count', { ...consumer, method: 'add' })).toBe(3);
    expect(sample(text, 'shuttle_calls_in_flight', { ...consumer, method: 'add' })).toBe(0);
    const streamLabels = { side: 'consumer', service: 'test.Stream', method: 'count' };
    expect(sample(text, 'shuttle_stream_chunks_total', streamLabels)).toBe(5 + 2 + 1);
    expect(sample(text, 'shuttle_stream_first_chunk_seconds_count', streamLabels)).toBe(3);
    // Every call was routed once, by the default policy, and none was a retry.
    expect(sample(text, 'shuttle_attempts_total', { service: 'test.Echo', attempt: '1' })).toBe(4);
    expect(sample(text, 'shuttle_attempts_total', { service: 'test.Echo', attempt: '2+' })).toBeUndefined();
    expect(text).toMatch(/^shuttle_route_decisions_total\{service="test\.Echo",policy="[a-z-]+",branch="[a-z-]+"\} 4$/m);

    const provider = await providerMetrics.text();
    expect(sample(provider, 'shuttle_calls_total', { side: 'provider', service: 'test.Echo', method: 'add', code: 'OK' })).toBe(3);
    expect(sample(provider, 'shuttle_calls_total', { side: 'provider', service: 'test.Echo', method: 'fail', code: 'NOT_FOUND' })).toBe(1);
    // The provider may have sent a few chunks of the abandoned stream before the cancel arrived.
    expect(sample(provider, 'shuttle_stream_chunks_total', { side: 'provider', service: 'test.Stream', method: 'count' })).toBeGreaterThanOrEqual(8);
    expect(sample(provider, 'shuttle_stream_chunks_total', { side: 'provider', service: 'test.Stream', method: 'count' })).toBeLessThan(1_000);
  });

  it('answers health probes, refusing readiness while not ready, and 404s anything else', async () => {
    let ready: boolean | 'throw' = true;
    const admin = await startAdminServer({
      metrics: new ShuttleMetrics(),
      ready: () => {
        if (ready === 'throw') throw new Error('readiness check failed');
        return ready;
      },
    });
    cleanups.push(() => admin.close());
    expect((await fetch(`${admin.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${admin.url}/health/ready`)).status).toBe(200);
    ready = false;
    const notReady = await fetch(`${admin.url}/health/ready`);
    expect([notReady.status, await notReady.json()]).toEqual([503, { status: 'not ready' }]);
    expect((await fetch(`${admin.url}/health/live`)).status).toBe(200);
    // A throwing check is "not ready", and the endpoint keeps serving.
    ready = 'throw';
    expect((await fetch(`${admin.url}/health/ready`)).status).toBe(503);
    const missing = await fetch(`${admin.url}/nope`);
    expect([missing.status, await missing.text()]).toEqual([
      404,
      'not found: /nope (served: /metrics, /health/live, /health/ready, /providers, /fleet, /totals, /admission, /dashboard)\n',
    ]);
    expect((await fetch(`${admin.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('shows the published load of a provider, and refuses readiness once it drains', async () => {
    const metrics = new ShuttleMetrics();
    const server = await createServer({
      services: [new EchoService()],
      registry: `memory://metrics-load-${process.pid}`,
      load: () => ({ waiting: 2, kvUsage: 0.5, tokensPerSecond: 900 }),
      loadIntervalMs: 50,
      drainTimeoutMs: 100,
      config: false,
    });
    let closed = false;
    cleanups.push(() => (closed ? Promise.resolve() : server.close()));
    metrics.watchServer(server);
    const admin = await startAdminServer({ metrics, ready: () => server.lastLoad?.draining !== true });
    cleanups.push(() => admin.close());
    const client = await createClient({ registry: `memory://metrics-load-${process.pid}`, config: false });
    cleanups.push(() => client.close());
    expect(await client.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 })).toEqual({ sum: 2 });
    await waitUntil(() => server.lastLoad !== undefined, 'a published load snapshot');

    const provider = { provider: server.url };
    const text = await scrape(admin.url);
    expect(sample(text, 'shuttle_provider_waiting', provider)).toBe(2);
    expect(sample(text, 'shuttle_provider_kv_usage', provider)).toBe(0.5);
    expect(sample(text, 'shuttle_provider_tokens_per_second', provider)).toBe(900);
    expect(sample(text, 'shuttle_provider_draining', provider)).toBe(0);
    expect(sample(text, 'shuttle_provider_connections', provider)).toBe(1);
    // The server-wide budgets, idle: nothing held, the default limits.
    expect(sample(text, 'shuttle_provider_budget_used_bytes', { ...provider, transport: 'tcp', budget: 'maxTotalDecodedBytes' })).toBe(0);
    expect(sample(text, 'shuttle_provider_budget_limit_bytes', { ...provider, transport: 'tcp', budget: 'maxTotalBufferedBytes' })).toBe(24 * 1024 * 1024);
    expect((await fetch(`${admin.url}/health/ready`)).status).toBe(200);

    await server.close();
    closed = true;
    expect(sample(await scrape(admin.url), 'shuttle_provider_draining', provider)).toBe(1);
    expect((await fetch(`${admin.url}/health/ready`)).status).toBe(503);
    metrics.unwatchServer(server);
    expect(sample(await scrape(admin.url), 'shuttle_provider_draining', provider)).toBeUndefined();
  });

  it("serves the consumer's provider directory, breaker and ejection states, and the totals the dashboard reads", async () => {
    const metrics = new ShuttleMetrics();
    const server = await createServer({ services: [new EchoService()], registry: false, metadata: { name: 'w-1', gpu: 'A10' }, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({
      registry: server.url,
      filters: [{ type: 'metrics', options: { metrics } }],
      onAttempt: (event) => metrics.attempt(event),
      config: false,
    });
    cleanups.push(() => client.close());
    const admin = await startAdminServer({ metrics, clients: [client] });
    cleanups.push(() => admin.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    await echo.echo('warm');
    const healthy = (await (await fetch(`${admin.url}/providers`)).json()) as { providers: Array<Record<string, unknown>> };
    expect(healthy.providers).toEqual([
      expect.objectContaining({
        service: 'test.Echo',
        address: `127.0.0.1:${server.port}`,
        protocol: 'tcp',
        inFlight: 0,
        connection: 'ready',
        breaker: 'closed',
        ejected: false,
      }),
    ]);
    // The provider answers UNAVAILABLE over and over: after 5 in a row it is ejected, and at
    // 50 % errors over 10 calls its breaker opens.
    for (let i = 0; i < 12; i++) await echo.fail({ code: RpcCode.UNAVAILABLE, message: 'GPU lost' }).catch(() => {});
    const sick = (await (await fetch(`${admin.url}/providers`)).json()) as { providers: Array<Record<string, unknown>> };
    expect(sick.providers[0]).toMatchObject({ breaker: 'open', ejected: true });
    expect(sick.providers[0]!['ejectedUntil']).toBeGreaterThan(Date.now());
    const text = await scrape(admin.url);
    const provider = { service: 'test.Echo', provider: `127.0.0.1:${server.port}` };
    expect(sample(text, 'shuttle_consumer_breaker_state', provider)).toBe(2);
    expect(sample(text, 'shuttle_consumer_provider_ejected', provider)).toBe(1);
    expect(sample(text, 'shuttle_consumer_provider_in_flight', provider)).toBe(0);
    // Per provider and outcome, attempt by attempt (the open breaker's refusals included).
    expect(sample(text, 'shuttle_consumer_provider_attempts_total', { ...provider, method: 'echo', code: 'OK' })).toBe(1);
    expect(sample(text, 'shuttle_consumer_provider_attempts_total', { ...provider, method: 'fail', code: 'UNAVAILABLE' })).toBe(12);
    expect(sample(text, 'shuttle_consumer_provider_attempt_seconds_count', provider)).toBe(13);
    const totals = (await (await fetch(`${admin.url}/totals`)).json()) as Record<string, number>;
    expect(totals).toMatchObject({ calls: 13, chunks: 0, firstChunks: 0 });
    // Failed: the 12 UNAVAILABLE answers, and whatever the open breaker refused locally.
    expect(totals['failed']).toBe(12);
    const page = await fetch(`${admin.url}/dashboard`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await page.text()).toMatch(/<title>shuttle-rpc dashboard<\/title>/);
  });

  it('rejects bad options with the key named', async () => {
    await expect(startAdminServer({ metrics: {} as ShuttleMetrics })).rejects.toThrow('shuttle-rpc: invalid admin metrics');
    await expect(startAdminServer({ metrics: new ShuttleMetrics(), port: 70_000 })).rejects.toThrow(
      'shuttle-rpc: invalid admin port: 70000 (allowed: an integer from 0 to 65535)',
    );
    await expect(createClient({ filters: [{ type: 'metrics', options: { metrics: 'prometheus' } }], config: false })).rejects.toThrow(
      'shuttle-rpc: invalid metrics filter option metrics: "prometheus" (allowed: a ShuttleMetrics)',
    );
  });
});
