import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from 'shuttle-rpc/testing';
import { waitUntil } from '../../helpers/wait.js';

/*
 * The fault proxy's partition (block/unblock) against a real echo server on loopback: what
 * the etcd tests rely on when they cut a registry off and let it back.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function echoServer(): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {}).on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

/** Connects through `proxy`; resolves with what came back for `text`, or `closed` if the connection ended first. */
async function roundTrip(proxy: FaultProxy, text: string): Promise<string> {
  const socket = net.connect({ host: proxy.host, port: proxy.port });
  cleanups.push(() => void socket.destroy());
  return new Promise((resolve) => {
    socket.on('error', () => resolve('closed'));
    socket.on('close', () => resolve('closed'));
    socket.on('data', (chunk: Buffer) => {
      resolve(chunk.toString());
      socket.end();
    });
    socket.on('connect', () => socket.write(text));
  });
}

describe('fault proxy: block and unblock', () => {
  it('relays until blocked; blocked, it cuts open connections and refuses new ones without dialling the target; unblocked, it relays again', async () => {
    const target = await echoServer();
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: target.port });
    cleanups.push(() => proxy.close());
    expect(await roundTrip(proxy, 'before')).toBe('before');

    const open = net.connect({ host: proxy.host, port: proxy.port });
    cleanups.push(() => void open.destroy());
    open.on('error', () => {});
    await new Promise((resolve) => open.once('connect', resolve));
    await waitUntil(() => proxy.connections === 1, 'the proxy to relay the open connection', 2000);
    const cut = new Promise((resolve) => open.once('close', resolve));

    proxy.block();
    await cut;
    const dialled = target.accepted();
    expect(await roundTrip(proxy, 'during')).toBe('closed');
    expect(target.accepted()).toBe(dialled);
    expect(proxy.connections).toBe(0);

    proxy.unblock();
    expect(await roundTrip(proxy, 'after')).toBe('after');
  });
});
