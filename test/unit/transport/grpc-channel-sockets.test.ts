import net from 'node:net';
import grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { watchSockets, type ChannelSockets } from '../../../src/transport/grpc/channel-sockets.js';

/*
 * A grpc connection bounds its connects through three members of grpc-js's secure connector
 * (`_createSecureConnector`, `waitForReady`, `connect`): this pins them against the installed
 * grpc-js, for plaintext and TLS credentials, so an upgrade that renames them fails here instead
 * of quietly bringing back background reconnects and sockets held by given-up connects.
 */
interface Connector {
  connect(socket: net.Socket): Promise<unknown>;
  waitForReady(): Promise<void>;
}

function connectorOf(credentials: grpc.ChannelCredentials): Connector {
  const create = (credentials as unknown as { _createSecureConnector: (...args: unknown[]) => Connector })._createSecureConnector;
  expect(typeof create).toBe('function');
  return create.call(credentials, { scheme: 'dns', path: '127.0.0.1:1' }, {}, null);
}

describe.each([
  ['plaintext', () => grpc.credentials.createInsecure()],
  ['TLS', () => grpc.credentials.createSsl()],
])('a %s channel connector, watched', (_name, credentials) => {
  it('reports each socket past TCP connect until it closes', async () => {
    const watch: ChannelSockets = { sockets: new Set(), closed: false, paused: false };
    const connector = connectorOf(watchSockets(credentials(), watch));
    await connector.waitForReady();
    const socket = new net.Socket();
    void connector.connect(socket).catch(() => undefined);
    expect(watch.sockets.has(socket)).toBe(true);
    socket.destroy();
    await new Promise((resolve) => socket.once('close', resolve));
    expect(watch.sockets.size).toBe(0);
  });

  it('once the channel is closed, refuses to dial and destroys a socket that comes up; while paused, destroys it too', async () => {
    const watch: ChannelSockets = { sockets: new Set(), closed: false, paused: false };
    const connector = connectorOf(watchSockets(credentials(), watch));
    watch.paused = true;
    const early = new net.Socket();
    await expect(connector.connect(early)).rejects.toThrow(/refused/);
    expect(early.destroyed).toBe(true);
    watch.paused = false;
    watch.closed = true;
    await expect(connector.waitForReady()).rejects.toThrow(/refused/);
    const late = new net.Socket();
    await expect(connector.connect(late)).rejects.toThrow(/refused/);
    expect(late.destroyed).toBe(true);
    expect(watch.sockets.size).toBe(0);
  });
});
