import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcCode, type RpcError } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * What a long-running consumer keeps about what it has seen: method names, and the addresses
 * it called by url. A proxy takes
 * any name, and the call goes out before the provider says it serves no such method, so a
 * consumer that names methods from data (a bridge, a CLI, a typo in a loop) must keep only the
 * names in use. Measured in a consumer process of its own (its heap after a full GC).
 */
interface Endpoint {
  readonly protocol: string;
  readonly port: number;
}

let provider: Child;
beforeAll(async () => {
  provider = await startFixture('provider', { PROVIDER_GRPC: '1' });
});
afterAll(async () => {
  await provider?.stop();
});

async function grownBytes(url: string, transport: 'tcp' | 'grpc'): Promise<{ grownBytes: number; unimplemented: number }> {
  const consumer = await startFixture(
    'method-names-consumer',
    { PROVIDER_URL: url, NAMES_TRANSPORT: transport, NAMES_COUNT: '30000', NODE_OPTIONS: '--expose-gc' },
    90_000,
  );
  await consumer.stop();
  return consumer.announced as unknown as { grownBytes: number; unimplemented: number };
}

describe('method names a consumer has called', () => {
  it('30,000 distinct names no provider serves leave the consumer heap within 4 MB (tcp)', { timeout: 120_000 }, async () => {
    const result = await grownBytes(provider.url, 'tcp');
    expect(result.unimplemented).toBe(33_000);
    // Kept for every name (a proxy function, a route object, a route key and its encoding), they grew it by 21 MB on tcp and 34 MB on grpc.
    expect(result.grownBytes).toBeLessThan(4 * 1024 * 1024);
  });

  it('30,000 distinct names no provider serves leave the consumer heap within 4 MB (grpc)', { timeout: 120_000 }, async () => {
    const grpcPort = (provider.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const result = await grownBytes(`shuttle://127.0.0.1:${grpcPort}`, 'grpc');
    expect(result.unimplemented).toBe(33_000);
    expect(result.grownBytes).toBeLessThan(4 * 1024 * 1024);
  });
});

describe('addresses a consumer has called by url', () => {
  it('2,000 references to ever-new urls keep at most 256 url directories, and a reference whose directory was closed calls again', {
    timeout: 60_000,
  }, async () => {
    const client = await createClient({ config: false, log: false, timeoutMs: 2000 });
    try {
      const first = client.proxy<EchoApi>('test.Echo', { url: provider.url });
      expect(await first.echo('before')).toBe('before');
      const codes = new Set<number>();
      for (let i = 0; i < 2000; i++) {
        // Nothing listens there: each call is refused at once.
        const gone = client.proxy<EchoApi>('test.Echo', { url: `shuttle://127.0.0.2:${10_000 + i}` });
        await gone.echo(i).catch((error: RpcError) => codes.add(error.code));
      }
      expect([...codes]).toEqual([RpcCode.UNAVAILABLE]);
      // One listed provider per url directory: before the bound, all 2,001 stayed, with their subscriptions.
      expect(client.providers().length).toBeLessThanOrEqual(256);
      expect(client.providers().some((listed) => listed.address === `${provider.host}:${provider.port}`)).toBe(false);
      expect(await first.echo('after')).toBe('after');
      expect(client.providers().some((listed) => listed.address === `${provider.host}:${provider.port}`)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
