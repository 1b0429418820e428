import { describe, expect, it } from 'vitest';
import { Directory } from '../../../src/client/directory.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { MemoryRegistry } from '../../../src/registry/memory.js';
import type { LoadSnapshot, Registry } from '../../../src/registry/registry.js';
import { providerRecord } from '../../helpers/fake-transport.js';
import { rejection } from '../../helpers/wait.js';

/*
 * The directory against a real in-process registry: what a consumer may call is exactly what
 * the registry last said, seen through the consumer's protocol, without draining providers.
 */
const QUERY = { service: 'test.Echo', version: '1.0.0', group: '' };

function load(draining: boolean): LoadSnapshot {
  return { timestamp: Date.now(), running: 0, waiting: 0, waitingUncachedTokens: 0, kvUsage: 0, tokensPerSecond: 0, draining };
}

function directoryOn(registry: Registry, protocol = 'tcp'): { directory: Directory; changes: () => number } {
  let changes = 0;
  const directory = new Directory(registry, QUERY, protocol, () => changes++);
  return { directory, changes: () => changes };
}

const ports = (list: readonly { port: number }[]): number[] => list.map((instance) => instance.port).sort((a, b) => a - b);

describe('Directory', () => {
  it('is empty and not ready until the first snapshot, then holds the matching records', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    await registry.register(providerRecord(2, { version: '2.0.0' }));
    await registry.register(providerRecord(3, { group: 'canary' }));
    await registry.register(providerRecord(4, { service: 'test.Other' }));
    const { directory, changes } = directoryOn(registry);
    expect(directory.isReady).toBe(false);
    expect(directory.instances).toEqual([]);
    expect(directory.eligible).toEqual([]);
    await directory.ready();
    expect(directory.isReady).toBe(true);
    expect(ports(directory.instances)).toEqual([1]);
    expect(ports(directory.eligible)).toEqual([1]);
    expect(changes()).toBe(1);
  });

  it('subscribes once however often ready() is called', async () => {
    const registry = new MemoryRegistry();
    let subscribes = 0;
    const counting: Registry = Object.assign(Object.create(registry) as Registry, {
      subscribe: (...args: Parameters<Registry['subscribe']>) => {
        subscribes++;
        return registry.subscribe(...args);
      },
    });
    const { directory } = directoryOn(counting);
    const first = directory.ready();
    expect(directory.ready()).toBe(first);
    await first;
    await directory.ready();
    expect(subscribes).toBe(1);
  });

  it('replaces its snapshot on every change and tells the owner each time', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    const { directory, changes } = directoryOn(registry);
    await directory.ready();
    const before = directory.instances;
    await registry.register(providerRecord(2));
    expect(ports(directory.instances)).toEqual([1, 2]);
    expect(changes()).toBe(2);
    // A new array: whoever cached views of the old snapshot can tell it is stale by identity.
    expect(directory.instances).not.toBe(before);
    expect(ports(before)).toEqual([1]);
    await registry.unregister(providerRecord(1));
    expect(ports(directory.instances)).toEqual([2]);
    expect(ports(directory.eligible)).toEqual([2]);
    expect(changes()).toBe(3);
  });

  it('leaves draining providers out of eligible but keeps them in instances', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    await registry.register(providerRecord(2));
    const { directory } = directoryOn(registry);
    await directory.ready();
    // Nobody draining: eligible is the snapshot itself, not a per-change copy.
    expect(directory.eligible).toBe(directory.instances);
    await registry.reportLoad('10.0.0.1:1', load(true));
    expect(ports(directory.instances)).toEqual([1, 2]);
    expect(ports(directory.eligible)).toEqual([2]);
    await registry.reportLoad('10.0.0.1:2', load(true));
    expect(directory.eligible).toEqual([]);
    expect(directory.instances).toHaveLength(2);
    await registry.reportLoad('10.0.0.1:1', load(false));
    expect(ports(directory.eligible)).toEqual([1]);
  });

  it('sees each provider through its own protocol and counts the protocols it cannot speak', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    await registry.register(providerRecord(2, { protocol: 'grpc' }));
    await registry.register(
      providerRecord(3, {
        endpoints: [
          { protocol: 'tcp', port: 3 },
          { protocol: 'grpc', port: 30 },
        ],
      }),
    );
    await registry.register(providerRecord(4, { protocol: '*' }));

    const tcp = directoryOn(registry, 'tcp').directory;
    await tcp.ready();
    expect(ports(tcp.instances)).toEqual([1, 3, 4]);
    expect(tcp.otherProtocols).toEqual(['grpc']);
    expect(tcp.instances.find((instance) => instance.port === 4)!.protocol).toBe('tcp');

    const grpc = directoryOn(registry, 'grpc').directory;
    await grpc.ready();
    // The tcp-first provider appears with its grpc port; the plain tcp one is left out.
    expect(ports(grpc.instances)).toEqual([2, 4, 30]);
    expect(grpc.instances.every((instance) => instance.protocol === 'grpc')).toBe(true);
    expect(grpc.otherProtocols).toEqual(['tcp']);
  });

  it('counts no other protocol when every provider speaks the consumer’s', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    const { directory } = directoryOn(registry);
    await directory.ready();
    expect(directory.otherProtocols).toEqual([]);
    await registry.register(providerRecord(2, { protocol: 'grpc' }));
    expect(directory.otherProtocols).toEqual(['grpc']);
    await registry.unregister(providerRecord(2, { protocol: 'grpc' }));
    expect(directory.otherProtocols).toEqual([]);
  });

  it('fails ready() UNAVAILABLE naming the service and the registry’s reason, and tries again on the next ready()', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    let down = true;
    const flaky: Registry = Object.assign(Object.create(registry) as Registry, {
      subscribe: (...args: Parameters<Registry['subscribe']>) =>
        down ? Promise.reject(new RpcError(RpcCode.UNAVAILABLE, 'etcd registry etcd://10.0.0.9:2379 is unreachable')) : registry.subscribe(...args),
    });
    const { directory } = directoryOn(flaky);
    const error = (await rejection(directory.ready())) as RpcError;
    expect(error).toBeInstanceOf(RpcError);
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    // The registry's own text once, without its code prefix repeated inside.
    expect(error.message).toBe('[unavailable] cannot find providers of test.Echo: etcd registry etcd://10.0.0.9:2379 is unreachable');
    expect(error.details?.['neverSent']).toBe(true);
    expect(error.cause).toBeInstanceOf(RpcError);
    expect(directory.isReady).toBe(false);
    down = false;
    await directory.ready();
    expect(directory.isReady).toBe(true);
    expect(ports(directory.instances)).toEqual([1]);
  });

  it('wraps a plain Error from the registry the same way', async () => {
    const broken: Registry = Object.assign(Object.create(new MemoryRegistry()) as Registry, { subscribe: () => Promise.reject(new Error('disk on fire')) });
    const error = (await rejection(directoryOn(broken).directory.ready())) as RpcError;
    expect(error.code).toBe(RpcCode.UNAVAILABLE);
    expect(error.rawMessage).toBe('cannot find providers of test.Echo: disk on fire');
  });

  it('stops following the registry once closed', async () => {
    const registry = new MemoryRegistry();
    await registry.register(providerRecord(1));
    const { directory, changes } = directoryOn(registry);
    await directory.ready();
    directory.close();
    await registry.register(providerRecord(2));
    expect(ports(directory.instances)).toEqual([1]);
    expect(changes()).toBe(1);
  });

  it('closes a subscription that arrives after close()', async () => {
    const registry = new MemoryRegistry();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let closed = 0;
    const slow: Registry = Object.assign(Object.create(registry) as Registry, {
      subscribe: async (...args: Parameters<Registry['subscribe']>) => {
        await gate;
        const subscription = await registry.subscribe(...args);
        return { close: () => (closed++, subscription.close()) };
      },
    });
    const { directory, changes } = directoryOn(slow);
    const ready = directory.ready();
    directory.close();
    release();
    await ready;
    expect(closed).toBe(1);
    await registry.register(providerRecord(1));
    expect(changes()).toBe(1);
    expect(directory.instances).toEqual([]);
  });
});
