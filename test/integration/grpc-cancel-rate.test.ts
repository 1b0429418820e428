import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Endpoint, type RpcClient } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import type { StreamApi } from '../fixtures/stream-service.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * A consumer that gives up on many calls over the grpc transport. Each one reaches the provider
 * as an RST_STREAM, and Node's HTTP/2 server ends a connection that sends more than 1,000 of
 * them (plus 33 a second) with INTERNAL_ERROR, failing every call on it; the consumer moves new
 * calls to a fresh connection before that, so calls it did not give up on are never hit.
 */
const protoFile = fileURLToPath(new URL('../fixtures/grpc.proto', import.meta.url));

let provider: Child;
let client: RpcClient;

beforeAll(async () => {
  provider = await startFixture('provider', { PROVIDER_GRPC: '1' });
  const grpcPort = (provider.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
  client = await createClient({
    registry: `shuttle://127.0.0.1:${grpcPort}`,
    transport: { type: 'grpc', options: { protoFiles: [protoFile] } },
    cluster: 'failfast',
    timeoutMs: 30_000,
    config: false,
    log: false,
  });
});

afterAll(async () => {
  await client?.close();
  await provider?.stop();
});

describe('grpc consumer giving up on calls at a high rate', () => {
  it('cancels 2,000 streams in a burst while a long call on the same provider finishes untouched', { timeout: 60_000 }, async () => {
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    const stream = client.proxy<StreamApi>('test.Stream', { version: '1.0.0' });
    await echo.add({ a: 1, b: 1 });
    // Long enough to outlast the burst below on a loaded machine (it takes 3 to 6 s).
    const long = echo.sleep({ ms: 12_000 });
    long.catch(() => {});
    const failures: string[] = [];
    let cancelled = 0;
    const started = Date.now();
    for (let round = 0; round < 25; round++) {
      await Promise.all(
        Array.from({ length: 80 }, async () => {
          try {
            for await (const _ of stream.count({ n: 100, delayMs: 5 })) break;
            cancelled++;
          } catch (error) {
            failures.push((error as Error).message);
          }
        }),
      );
    }
    const seconds = (Date.now() - started) / 1000;
    expect(failures).toEqual([]);
    // Past the provider's allowance (1,000 + 33 a second): on one connection it would have been ended.
    expect(cancelled).toBeGreaterThan(1000 + 33 * seconds + 100);
    await expect(long).resolves.toEqual({ aborted: false });
    await expect(echo.add({ a: 2, b: 3 })).resolves.toEqual({ sum: 5 });
  });
});
