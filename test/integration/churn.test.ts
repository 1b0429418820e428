import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * What a long-running consumer keeps about what it has seen: here, method names. A proxy takes
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
