import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { RpcCode, RpcError, createClient, createProtobufSerializer, type Proxied, type RpcClient } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection } from '../helpers/wait.js';

/*
 * End-to-end calls across two real processes: the provider is a child process (compiled
 * fixture, running dist/), the consumer is this test process, over loopback tcp.
 */
const proto = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url));

let provider: Child;
const clients: RpcClient[] = [];

beforeAll(async () => {
  provider = await startFixture('provider');
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await provider.stop();
});

async function echoOver(serializer: 'msgpack' | 'json' | 'protobuf'): Promise<Proxied<EchoApi>> {
  const client = await createClient({
    registry: provider.url,
    serializer,
    serializers: [createProtobufSerializer({ files: [proto] })],
    timeoutMs: 5000,
  });
  clients.push(client);
  return client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
}

describe.each(['msgpack', 'json', 'protobuf'] as const)('end to end over %s', (serializer) => {
  let echo: Proxied<EchoApi>;
  beforeAll(async () => {
    echo = await echoOver(serializer);
  });

  it('calls a method in another process and gets its result', async () => {
    expect(await echo.add({ a: 40, b: 2 })).toEqual({ sum: 42 });
    expect(provider.process.pid).not.toBe(process.pid);
  });

  it('carries the error code, message, details and retry hint, never the stack', async () => {
    const error = await rejection(echo.fail({ code: RpcCode.RESOURCE_EXHAUSTED, message: 'all 8 slots busy' }));
    expect(error).toBeInstanceOf(RpcError);
    const rpcError = error as RpcError;
    expect(rpcError.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(rpcError.message).toBe('[resource exhausted] all 8 slots busy');
    expect(rpcError.details).toEqual({ where: 'fail' });
    expect(rpcError.retryAfterMs).toBe(250);
    expect(rpcError.stack).not.toMatch(/services\.js/);
  });
});

describe.each(['msgpack', 'json'] as const)('schemaless serializer %s', (serializer) => {
  it('round-trips structured values from the provider process', async () => {
    const echo = await echoOver(serializer);
    const value = { text: 'héllo ✓', list: [1, 2.5, null, true], nested: { deep: { deeper: 'x' } } };
    expect(await echo.echo(value)).toEqual(value);
    expect(await echo.pid()).toBe(provider.process.pid);
  });

  it('turns a plain thrown Error into INTERNAL with a generic message and a correlation id, never its message or stack', async () => {
    const echo = await echoOver(serializer);
    const error = (await rejection(echo.failPlain('disk on fire at /srv/secret'))) as RpcError;
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toMatch(/^\[internal\] test\.Echo\.failPlain failed \(correlation id [0-9a-f-]{36}; the provider's log has the detail\)$/);
    expect(error.details).toEqual({ correlationId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(JSON.stringify(error.toWire())).not.toMatch(/disk on fire|secret|at .*\.js/);
  });
});

describe('serializer specifics', () => {
  it('msgpack keeps binary payloads binary', async () => {
    const echo = await echoOver('msgpack');
    const embedding = new Float32Array([0.5, -0.25, 1e-3]);
    expect(await echo.echo(embedding)).toEqual(embedding);
  });

  it('protobuf refuses a request that does not fit the .proto before sending it', async () => {
    const echo = await echoOver('protobuf');
    const control = await echoOver('msgpack');
    const before = (await control.invocations())['add'] ?? 0;
    const error = (await rejection(echo.add({ a: 'x' as unknown as number, b: 1 }))) as RpcError;
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.message).toMatch(/does not fit test\.AddRequest: request\.a is the string "x", not a number for double/);
    // A field the .proto does not declare would be dropped on the way: refused, naming it.
    const extra = (await rejection(echo.add({ a: 1, b: 2, c: 3 } as { a: number; b: number }))) as RpcError;
    expect(extra.message).toMatch(/does not fit test\.AddRequest: request\.c is not a field of test\.AddRequest \(its fields: a, b\)/);
    expect((await control.invocations())['add'] ?? 0).toBe(before);
  });

  it('json refuses what it cannot carry faithfully, naming the path, before sending it', async () => {
    const echo = await echoOver('json');
    const before = (await echo.invocations())['echo'] ?? 0;
    for (const [value, path] of [
      [{ embedding: new Float32Array([0.5]) }, 'request.embedding'],
      [{ scores: [1, Number.NaN] }, 'request.scores[1]'],
      [{ counts: new Map([['a', 1]]) }, 'request.counts'],
    ] as const) {
      const error = (await rejection(echo.echo(value))) as RpcError;
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.message).toContain(`cannot carry ${path}`);
    }
    expect((await echo.invocations())['echo'] ?? 0).toBe(before);
  });

  it('protobuf answers UNIMPLEMENTED for a method missing from the .proto', async () => {
    const echo = await echoOver('protobuf');
    const error = (await rejection(echo.echo('x'))) as RpcError;
    expect(error.code).toBe(RpcCode.UNIMPLEMENTED);
    expect(error.message).toMatch(/no rpc echo \(or Echo\) in service test\.Echo/);
  });
});
