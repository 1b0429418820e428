import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, type RpcError, createClient, type Proxied, type RpcClient } from 'shuttle-rpc';
import { connectRaw } from 'shuttle-rpc/testing';
import { encodeFrame, FrameType } from '../../src/transport/frame.js';
import type { EchoApi } from '../fixtures/services.js';
import { requestFrame, unpack } from '../helpers/frames.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection } from '../helpers/wait.js';

/*
 * Hostile and broken input against a provider running in its own process. Every bad frame must
 * close only the connection that sent it; every bad call must fail only that call.
 */
let provider: Child;
let client: RpcClient;
let echo: Proxied<EchoApi>;

beforeAll(async () => {
  provider = await startFixture('provider');
  client = await createClient({ registry: provider.url, timeoutMs: 5000 });
  echo = client.proxy<EchoApi>('test.Echo', { version: '1.0.0' });
  expect(await echo.add({ a: 1, b: 1 })).toEqual({ sum: 2 });
});

afterAll(async () => {
  await client.close();
  await provider.stop();
});

function header(mutate: (frame: Buffer) => void): Buffer {
  const frame = requestFrame(1, 'add', { a: 1, b: 2 });
  mutate(frame);
  return frame;
}

const protocolViolations: Array<[string, Buffer, RegExp]> = [
  [
    'a declared body length above maxFrameBytes',
    header((f) => f.writeUInt32BE(8 * 1024 * 1024 + 1, 16)),
    /declared body length 8388609 exceeds maxFrameBytes 8388608/,
  ],
  ['a 4 GiB declared body length', header((f) => f.writeUInt32BE(0xffffffff, 16)), /declared body length 4294967295/],
  ['a bad magic', header((f) => f.writeUInt16BE(0x4745, 0)), /bad magic 0x4745/],
  ['an unknown protocol version', header((f) => (f[2] = 9)), /unsupported protocol version 9/],
  ['an unknown frame type', header((f) => (f[3] = 77)), /unknown frame type 77/],
  ['an unknown serializer id', header((f) => (f[5] = 42)), /unknown serializer id 42 \(this provider speaks msgpack, json, protobuf\)/],
  ['a frame type only providers send', encodeFrame(FrameType.RESPONSE, 1), /a consumer may not send frame type 2/],
];

describe('protocol violations', () => {
  it.each(protocolViolations)('%s: GOAWAY with the reason, that connection closed, others unharmed', async (_name, bytes, reason) => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(bytes);
    const goaway = await raw.nextFrame((frame) => frame.type === FrameType.GOAWAY);
    expect(goaway.status).toBe(RpcCode.INTERNAL);
    expect(JSON.parse(goaway.body.toString()).message).toMatch(reason);
    await raw.waitClosed();
    // The client's connection, opened before, still works; so does a new raw one.
    expect(await echo.add({ a: 2, b: 3 })).toEqual({ sum: 5 });
    const other = await connectRaw(provider.host, provider.port);
    other.send(requestFrame(5, 'add', { a: 1, b: 1 }));
    expect(unpack((await other.nextFrame()).body)).toEqual({ sum: 2 });
    other.close();
  });
});

describe('bad calls fail alone', () => {
  it('answers INVALID_ARGUMENT to a body that does not decode, and the connection stays up', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(requestFrame(1, 'add', Buffer.from([0x92, 0x01])));
    const answer = await raw.nextFrame();
    expect(answer.requestId).toBe(1);
    expect(answer.status).toBe(RpcCode.INVALID_ARGUMENT);
    expect(JSON.parse(answer.body.toString()).message).toMatch(/cannot decode request of test\.Echo\.add as msgpack/);
    raw.send(requestFrame(2, 'add', { a: 20, b: 22 }));
    const next = await raw.nextFrame();
    expect([next.requestId, next.status, unpack(next.body)]).toEqual([2, 0, { sum: 42 }]);
    expect(raw.closed).toBe(false);
    raw.close();
  });

  it('answers INVALID_ARGUMENT to a truncated request head', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(encodeFrame(FrameType.REQUEST, 3, Buffer.from([50, 0x61]), { serializer: 1 }));
    const answer = await raw.nextFrame();
    expect(answer.status).toBe(RpcCode.INVALID_ARGUMENT);
    expect(JSON.parse(answer.body.toString()).message).toMatch(/request head truncated while reading service/);
    raw.close();
  });

  it('a request or an answer over maxFrameBytes fails that call alone, RESOURCE_EXHAUSTED naming the limit; calls beside it go on', async () => {
    const beside = echo.sleep({ ms: 600 });
    const request = (await rejection(echo.echo(new Uint8Array(9 * 1024 * 1024)))) as RpcError;
    expect(request.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(request.message).toMatch(/the request of test\.Echo\.echo is 943\d{4} bytes, over maxFrameBytes 8388608/);
    expect(request.details).toEqual({ neverSent: true });
    const answer = (await rejection(echo.blob({ bytes: 20 * 1024 * 1024 }))) as RpcError;
    expect(answer.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(answer.message).toMatch(
      /the answer of test\.Echo\.blob is 2097\d{4} bytes, over maxFrameBytes 8388608, the largest message a peer accepts: send it in parts/,
    );
    expect(await beside).toEqual({ aborted: false });
    expect(await echo.add({ a: 4, b: 5 })).toEqual({ sum: 9 });
    const small = await echo.blob({ bytes: 1024 });
    expect(small).toHaveLength(1024);
  });

  it('answers INVALID_ARGUMENT to arguments of the wrong shape', async () => {
    const error = (await rejection(echo.add('not an object' as never))) as RpcError;
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.details).toEqual({ got: 'string' });
  });

  it('answers INVALID_ARGUMENT to JSON bytes sent under the protobuf serializer id', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(requestFrame(4, 'add', Buffer.from('{"a":1,"b":2}'), { serializer: 3 }));
    const answer = await raw.nextFrame();
    expect(answer.status).toBe(RpcCode.INVALID_ARGUMENT);
    expect(JSON.parse(answer.body.toString()).message).toMatch(/cannot decode request of test\.Echo\.add as protobuf/);
    raw.close();
  });

  it('answers INVALID_ARGUMENT to a malformed timeout and runs nothing', async () => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(requestFrame(6, 'sleep', { ms: 10 }, { meta: { 'shuttle-timeout-ms': 'soon' } }));
    const answer = await raw.nextFrame();
    expect(answer.status).toBe(RpcCode.INVALID_ARGUMENT);
    expect(JSON.parse(answer.body.toString()).message).toMatch(/shuttle-timeout-ms must be a decimal integer of milliseconds/);
    raw.close();
  });
});

describe('dispatch security over the wire', () => {
  // The payload is deliberately undecodable: an UNIMPLEMENTED answer (not INVALID_ARGUMENT)
  // proves the name was rejected before any argument byte was decoded.
  const garbage = Buffer.from([0x92, 0x01]);
  const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'secret', 'counts', '__defineSetter__', 'then'];

  it.each(names)('answers UNIMPLEMENTED for %j without decoding the arguments', async (name) => {
    const raw = await connectRaw(provider.host, provider.port);
    raw.send(requestFrame(9, name, garbage));
    const answer = await raw.nextFrame();
    expect(answer.status).toBe(RpcCode.UNIMPLEMENTED);
    expect(JSON.parse(answer.body.toString()).message).toMatch(/is not an exported method of test\.Echo/);
    raw.close();
  });

  it('never invoked any of those handlers', async () => {
    const counts = await echo.invocations();
    // The counter works (add ran in the tests above) and counted none of the forbidden names.
    expect(counts['add']).toBeGreaterThan(0);
    for (const name of names) expect(Object.hasOwn(counts, name), name).toBe(false);
  });
});

describe('unreachable providers fail fast', () => {
  it('answers UNAVAILABLE within the connect timeout when nothing listens', async () => {
    const port = await closedPort();
    const lonely = await createClient({ registry: `shuttle://127.0.0.1:${port}`, connectTimeoutMs: 1000 });
    const started = Date.now();
    const error = (await rejection(lonely.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }, { timeoutMs: 30_000 }))) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(error.details).toEqual({ neverSent: true });
    expect(Date.now() - started).toBeLessThan(1000);
    // While backing off, the next call fails at once instead of queueing.
    const again = (await rejection(lonely.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }))) as RpcError;
    expect(again.message).toMatch(/next attempt in \d+ ms/);
    await lonely.close();
  });

  it('answers UNAVAILABLE after heartbeat interval + timeout when the provider accepts but never answers', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const sockets = new Set<net.Socket>();
    silent.on('connection', (socket) => sockets.add(socket));
    const port = (silent.address() as net.AddressInfo).port;
    const client2 = await createClient({ registry: `shuttle://127.0.0.1:${port}`, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 300 });
    const started = Date.now();
    const error = (await rejection(client2.proxy<EchoApi>('test.Echo').add({ a: 1, b: 1 }, { timeoutMs: 30_000 }))) as RpcError;
    const elapsed = Date.now() - started;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.message).toMatch(/did not answer a heartbeat within 300 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(5000);
    await client2.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });
});

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
