import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createServer, type RouteEvent, type RpcServer } from 'shuttle-rpc';
import type { CallOutcome, LoadBalancer } from 'shuttle-rpc/spi';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { StreamService, type StreamApi } from '../fixtures/stream-service.js';
import { waitUntil } from '../helpers/wait.js';

/* Load balancing through the real client: routing keys, decisions reported, stats kept. */
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function providers(count: number, registry: string): Promise<{ servers: RpcServer[]; services: EchoService[] }> {
  const services = Array.from({ length: count }, () => new EchoService());
  const servers = await Promise.all(services.map((service) => createServer({ services: [service], registry, config: false })));
  cleanups.push(() => Promise.all(servers.map((server) => server.close())));
  return { servers, services };
}

describe('routing through the client', () => {
  it.each(['prefix-affinity', 'slo'])('%s keeps a conversation on one provider, reads the prompt by path, and reports why', async (policy) => {
    const registry = `memory://routing-${policy}-${process.pid}`;
    const { services } = await providers(4, registry);
    const events: RouteEvent[] = [];
    const client = await createClient({ registry, loadbalance: policy, onRoute: (event) => events.push(event), config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { routingKey: 'messages' });
    const history = [{ role: 'system', content: 'You are a careful assistant. '.repeat(30) }];
    for (let turn = 0; turn < 10; turn++) {
      history.push({ role: 'user', content: `turn ${turn}: ${'words '.repeat(30)}` });
      await echo.echo({ messages: history });
    }
    const served = services.map((service) => service.counts['echo'] ?? 0);
    expect(served.filter((count) => count > 0)).toEqual([10]);
    expect(events).toHaveLength(10);
    expect(events[0]!.decision).toMatchObject({ policy, branch: 'cold' });
    expect(events.slice(1).every((event) => event.decision.branch === 'hit')).toBe(true);
    expect(events.every((event) => event.service === 'test.Echo' && event.method === 'echo')).toBe(true);
  });

  it('a per-call routingKey overrides the reference’s, and consistent-hash follows it', async () => {
    const registry = `memory://routing-ch-${process.pid}`;
    const { services } = await providers(3, registry);
    const client = await createClient({ registry, loadbalance: 'consistent-hash', config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    for (let i = 0; i < 30; i++) await echo.echo(i, { routingKey: 'tenant-7' });
    expect(services.map((service) => service.counts['echo'] ?? 0).sort()).toEqual([0, 0, 30]);
    await expect(echo.echo(1, { routingKey: 7 as never })).rejects.toThrow(/routingKey of test\.Echo\.echo must be a string/);
    await expect(async () => client.proxy('test.Echo', { routingKey: 'bad path!' })).rejects.toThrow(/invalid reference test\.Echo routingKey: "bad path!"/);
  });

  it('least-active spreads concurrent slow calls evenly', async () => {
    const registry = `memory://routing-la-${process.pid}`;
    const { services } = await providers(4, registry);
    const client = await createClient({ registry, loadbalance: 'least-active', config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo');
    await Promise.all(Array.from({ length: 40 }, () => echo.sleep({ ms: 50 })));
    expect(services.map((service) => service.counts['sleep'] ?? 0)).toEqual([10, 10, 10, 10]);
  });

  it('tells a learning balancer when each answer started and ended, unary and streaming', async () => {
    const registry = `memory://routing-observe-${process.pid}`;
    const relay = await createClient({ registry, config: false });
    cleanups.push(() => relay.close());
    const server = await createServer({ services: [new EchoService(), new StreamService(relay)], registry, config: false });
    cleanups.push(() => server.close());
    const outcomes: CallOutcome[] = [];
    const learner: LoadBalancer = {
      name: 'learner',
      select: (providers) => ({ provider: providers[0]!, policy: 'learner', branch: 'pick' }),
      observe: (outcome) => void outcomes.push(outcome),
    };
    const client = await createClient({ registry, loadbalance: learner, config: false });
    cleanups.push(() => client.close());
    await client.proxy<EchoApi>('test.Echo').sleep({ ms: 30 });
    const chunks: number[] = [];
    for await (const chunk of client.proxy<StreamApi>('test.Stream').count({ n: 3, waitAfterFirstMs: 120 })) chunks.push(chunk.i);
    expect(chunks).toEqual([0, 1, 2]);
    await waitUntil(() => outcomes.length === 2, 'the balancer to observe both calls', 1000, 50);
    const [unary, stream] = outcomes;
    expect(unary!.invocation.method).toBe('sleep');
    expect(unary!.address).toBe(`${server.host}:${server.port}`);
    expect(unary!.firstAnswerMs).toBeGreaterThanOrEqual(25);
    expect(unary!.totalMs).toBe(unary!.firstAnswerMs);
    expect(stream!.invocation.method).toBe('count');
    // The first chunk came at once; the stream ended after the 120 ms pause.
    expect(stream!.firstAnswerMs).toBeLessThan(100);
    expect(stream!.totalMs - stream!.firstAnswerMs).toBeGreaterThanOrEqual(100);
  });
});
