import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, callOutcome, createClient, createServer, type RpcError } from 'shuttle-rpc';
import { EchoService, type EchoApi } from '../fixtures/services.js';

/*
 * What a caller is told of a call whose deadline passed: once its request was sent, the handler
 * may have run, wholly or in part (gRPC says the same of DEADLINE_EXCEEDED), so the outcome is
 * `maybe-executed` and a non-idempotent call must not simply be sent again; before it was sent,
 * `failed`.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function failureOf(call: Promise<unknown>): Promise<RpcError> {
  return call.then(
    () => {
      throw new Error('the call succeeded');
    },
    (error: RpcError) => error,
  );
}

describe('a call whose deadline passed', () => {
  it.each(['tcp', 'grpc'] as const)('%s: after its request was sent, is maybe executed, whether this side or the provider ended it', async (transport) => {
    const server = await createServer({ services: [new EchoService()], transport, registry: false, config: false });
    cleanups.push(() => server.close());
    const client = await createClient({ registry: `shuttle://127.0.0.1:${server.port}`, transport, cluster: 'failfast', config: false });
    cleanups.push(() => client.close());
    const echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
    expect(await echo.echo('warm')).toBe('warm');
    const error = await failureOf(echo.sleep({ ms: 2000 }, { timeoutMs: 150 }));
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(callOutcome(error)).toBe('maybe-executed');
  });

  it('before its request was sent (the provider never answered the connection), is failed', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => silent.close(resolve)));
    cleanups.push(() => sockets.forEach((socket) => socket.destroy()));
    const port = (silent.address() as net.AddressInfo).port;
    const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, connectTimeoutMs: 10_000, cluster: 'failfast', config: false });
    cleanups.push(() => client.close());
    const error = await failureOf(client.proxy<EchoApi>('test.Echo', { version: '1.0.0' }).echo('x', { timeoutMs: 150 }));
    expect(error.code).toBe(RpcCode.DEADLINE_EXCEEDED);
    expect(callOutcome(error)).toBe('failed');
  });
});
