import { describe, expect, it } from 'vitest';
import { ConnectionPool, DEFAULT_POOL_LIMITS, type PoolLimits } from '../../../src/client/connection-pool.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { FAKE_CONNECT_OPTIONS, fakeTransport, type FakeConnection, type FakeTransport } from '../../helpers/fake-transport.js';

const OPTIONS = FAKE_CONNECT_OPTIONS;

function pool(name = 'tcp', limits?: Partial<PoolLimits>) {
  const transport = fakeTransport(name);
  return { transport, pool: new ConnectionPool(transport, OPTIONS, { ...DEFAULT_POOL_LIMITS, ...limits }) };
}

/** Hands out the connection to `address` (`host:port`) and marks it connected. */
function use(connections: ConnectionPool, transport: FakeTransport, address: string): FakeConnection {
  const [host, port] = address.split(':');
  connections.get(host!, Number(port));
  const connection = transport.connection(address)!;
  connection.state = 'ready';
  return connection;
}

describe('ConnectionPool', () => {
  it('speaks its transport’s protocol', () => {
    expect(pool('grpc').pool.protocol).toBe('grpc');
  });

  it('connects lazily, once per address, with its options, and hands the same connection to every caller', () => {
    const { transport, pool: connections } = pool();
    expect(transport.connects).toEqual([]);
    const first = connections.get('10.0.0.1', 1);
    expect(connections.get('10.0.0.1', 1)).toBe(first);
    expect(transport.connects).toHaveLength(1);
    expect(transport.connects[0]).toMatchObject({ host: '10.0.0.1', port: 1, options: OPTIONS });
    // Another port or another host is another provider.
    const otherPort = connections.get('10.0.0.1', 2);
    const otherHost = connections.get('10.0.0.2', 1);
    expect(otherPort).not.toBe(first);
    expect(otherHost).not.toBe(first);
    expect(otherHost).not.toBe(otherPort);
    expect(transport.connects.map((made) => `${made.host}:${made.port}`)).toEqual(['10.0.0.1:1', '10.0.0.1:2', '10.0.0.2:1']);
  });

  it('reports state and calls in flight per address, none before the first call there', () => {
    const { transport, pool: connections } = pool();
    expect(connections.state('10.0.0.1:1')).toBe('none');
    expect(connections.inFlight('10.0.0.1:1')).toBe(0);
    connections.get('10.0.0.1', 1);
    const connection = transport.connection('10.0.0.1:1')!;
    expect(connections.state('10.0.0.1:1')).toBe('idle');
    connection.state = 'ready';
    connection.inFlight = 3;
    expect(connections.state('10.0.0.1:1')).toBe('ready');
    expect(connections.inFlight('10.0.0.1:1')).toBe(3);
    expect(connections.inFlight('10.0.0.1:2')).toBe(0);
  });

  it('calls an address down only when its connection failed or the provider said GOAWAY', () => {
    const { transport, pool: connections } = pool();
    expect(connections.isDown('10.0.0.1:1')).toBe(false);
    connections.get('10.0.0.1', 1);
    const connection = transport.connection('10.0.0.1:1')!;
    for (const state of ['idle', 'connecting', 'ready'] as const) {
      connection.state = state;
      expect(connections.isDown('10.0.0.1:1'), state).toBe(false);
    }
    connection.state = 'transient-failure';
    expect(connections.isDown('10.0.0.1:1')).toBe(true);
    connection.state = 'ready';
    connection.goingAway = true;
    expect(connections.isDown('10.0.0.1:1')).toBe(true);
  });

  it('retainOnly closes, gracefully, the connections to addresses that left and forgets them; close() ends their wait', async () => {
    const { transport, pool: connections } = pool();
    const kept = connections.get('10.0.0.1', 1);
    const gone = connections.get('10.0.0.1', 2);
    connections.retainOnly(new Set(['10.0.0.1:1']));
    // Their calls in flight run to their own deadlines: no wait of the pool's own.
    expect(transport.connection('10.0.0.1:2')!.closes).toEqual([{ graceful: true, timeoutMs: 2_147_483_647 }]);
    expect(transport.connection('10.0.0.1:1')!.closes).toEqual([]);
    expect(connections.state('10.0.0.1:2')).toBe('none');
    expect(connections.get('10.0.0.1', 1)).toBe(kept);
    // A provider that comes back gets a new connection, not the closed one.
    const back = connections.get('10.0.0.1', 2);
    expect(back).not.toBe(gone);
    expect(transport.connects).toHaveLength(3);
    // Closing the pool closes the departed provider's connection again, with the pool's options.
    await connections.close({ graceful: false, timeoutMs: 0 });
    expect((gone as unknown as { closes: unknown[] }).closes).toEqual([
      { graceful: true, timeoutMs: 2_147_483_647 },
      { graceful: false, timeoutMs: 0 },
    ]);
  });

  it('close() closes every connection with its options and resolves only when all have closed', async () => {
    const { transport, pool: connections } = pool();
    connections.get('10.0.0.1', 1);
    connections.get('10.0.0.1', 2);
    let release!: () => void;
    transport.connection('10.0.0.1:2')!.closing = new Promise<void>((resolve) => (release = resolve));
    let closed = false;
    const closing = connections.close({ graceful: true, timeoutMs: 250 }).then(() => (closed = true));
    for (const address of ['10.0.0.1:1', '10.0.0.1:2']) expect(transport.connection(address)!.closes).toEqual([{ graceful: true, timeoutMs: 250 }]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closed).toBe(false);
    release();
    await closing;
    expect(closed).toBe(true);
    // Empty afterwards: nothing is left to close twice.
    expect(connections.state('10.0.0.1:1')).toBe('none');
    await connections.close({ graceful: false, timeoutMs: 0 });
    expect(transport.connection('10.0.0.1:1')!.closes).toHaveLength(1);
  });

  it('holds at most maxConnections open: a new one closes the least recently used with no call in flight', () => {
    const { transport, pool: connections } = pool('tcp', { maxConnections: 3, idleTimeoutMs: 60_000 });
    const first = use(connections, transport, '10.0.0.1:1');
    const second = use(connections, transport, '10.0.0.2:1');
    const third = use(connections, transport, '10.0.0.3:1');
    // The first is used again: the second is now the least recently used.
    connections.get('10.0.0.1', 1);
    third.inFlight = 1;
    const fourth = use(connections, transport, '10.0.0.4:1');
    expect(second.closes).toHaveLength(1);
    expect(first.closes).toEqual([]);
    expect(third.closes).toEqual([]);
    expect(connections.state('10.0.0.2:1')).toBe('none');
    expect(connections.open).toBe(3);
    // Connections holding no socket (failed, or never connected) take no room.
    fourth.state = 'transient-failure';
    use(connections, transport, '10.0.0.5:1');
    expect(first.closes).toEqual([]);
    expect(connections.open).toBe(3);
  });

  it('refuses a new connection RESOURCE_EXHAUSTED, never sent, when every open one has calls in flight', () => {
    const { transport, pool: connections } = pool('tcp', { maxConnections: 2, idleTimeoutMs: 60_000 });
    for (const address of ['10.0.0.1:1', '10.0.0.2:1']) use(connections, transport, address).inFlight = 1;
    let refused: unknown;
    try {
      connections.get('10.0.0.3', 1);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect((refused as RpcError).details).toMatchObject({ neverSent: true });
    expect((refused as RpcError).message).toContain('maxConnections 2');
    expect(transport.connection('10.0.0.1:1')!.closes).toEqual([]);
    // Once a call ends there is room again.
    transport.connection('10.0.0.1:1')!.inFlight = 0;
    expect(connections.get('10.0.0.3', 1).address).toBe('10.0.0.3:1');
    expect(transport.connection('10.0.0.1:1')!.closes).toHaveLength(1);
  });

  it('closes connections unused for idleTimeoutMs, never one with a call in flight, and keeps its timer only while it holds any', async () => {
    const { transport, pool: connections } = pool('tcp', { maxConnections: 100, idleTimeoutMs: 40 });
    const idle = use(connections, transport, '10.0.0.1:1');
    const busy = use(connections, transport, '10.0.0.2:1');
    const used = use(connections, transport, '10.0.0.3:1');
    busy.inFlight = 1;
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    const end = Date.now() + 150;
    while (Date.now() < end) {
      connections.get('10.0.0.3', 1);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(idle.closes).toHaveLength(1);
    expect(connections.state('10.0.0.1:1')).toBe('none');
    expect(busy.closes).toEqual([]);
    expect(used.closes).toEqual([]);
    busy.inFlight = 0;
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(busy.closes).toHaveLength(1);
    expect(used.closes).toHaveLength(1);
    // Nothing left: the pool's one timer is gone too.
    expect(timers()).toBeLessThan(before);
  });
});
