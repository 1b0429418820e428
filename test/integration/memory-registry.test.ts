import { describe, expect, it } from 'vitest';
import { RpcCode, createClient, createServer, type RpcError } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';
import { rejection } from '../helpers/wait.js';

describe('memory:// registry, provider and consumer in one process', () => {
  it('finds providers, spreads calls over them, and forgets a provider that closes', async () => {
    const registry = `memory://memory-registry-test-${process.pid}`;
    const a = new EchoService();
    const b = new EchoService();
    const serverA = await createServer({ services: [a], registry });
    const serverB = await createServer({ services: [b], registry });
    const client = await createClient({ registry });
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });

    await Promise.all(Array.from({ length: 200 }, (_, i) => echo.echo(i)));
    // Weighted random over two equal providers: both get a fair share (P(<50 of 200) ~ 1e-13).
    expect(a.counts['echo']).toBeGreaterThan(50);
    expect(b.counts['echo']).toBeGreaterThan(50);

    await serverA.close();
    const before = b.counts['echo']!;
    await Promise.all(Array.from({ length: 20 }, (_, i) => echo.echo(i)));
    expect(b.counts['echo']).toBe(before + 20);

    await serverB.close();
    const error = (await rejection(echo.echo(1))) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toMatch(/no provider of test\.Echo:1\.0\.0 is registered/);
    await client.close();
  });

  it('does not match a provider of another version', async () => {
    const registry = `memory://memory-version-test-${process.pid}`;
    const server = await createServer({ services: [new EchoService()], registry });
    const client = await createClient({ registry });
    const error = (await rejection(client.proxy<EchoApi>('test.Echo', { version: '2.0.0' }).echo(1))) as RpcError;
    expect(error.message).toBe('[unavailable] no provider of test.Echo:2.0.0 is registered; test.Echo is registered under version 1.0.0');
    expect(await client.proxy<EchoApi>('test.Echo').echo(7)).toBe(7);
    await client.close();
    await server.close();
  });
});
