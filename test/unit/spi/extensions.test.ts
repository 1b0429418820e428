import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultExtensions, type Extensions } from '../../../src/spi/extensions.js';
import { createContext } from '../../../src/spi/context.js';

const proto = fileURLToPath(new URL('../../fixtures/echo.proto', import.meta.url));

/** Options each built-in needs to be created; everything else is created with none. */
const REQUIRED_OPTIONS: Record<string, Record<string, unknown>> = {
  'serializer/protobuf': { files: [proto] },
  'registry/memory': { url: 'memory://extensions-test' },
  'registry/shuttle': { url: 'shuttle://127.0.0.1:1' },
  'registry/file': { dir: '/tmp/shuttle-extensions-test' },
  'registry/etcd': { url: 'etcd://127.0.0.1:1' },
};

describe('defaultExtensions', () => {
  it('has every built-in of every point, each reachable by its name', async () => {
    const ext = defaultExtensions();
    expect(Object.fromEntries(Object.entries(ext).map(([point, registry]) => [point, registry.names()]))).toEqual({
      serializer: ['msgpack', 'json', 'protobuf'],
      transport: ['tcp', 'grpc'],
      registry: ['memory', 'shuttle', 'file', 'etcd'],
      loadbalance: ['random', 'round-robin', 'least-active', 'shortest-response', 'p2c', 'consistent-hash', 'prefix-affinity', 'slo'],
      cluster: ['failover', 'failfast', 'failsafe', 'failback', 'forking', 'broadcast'],
      filter: ['token', 'concurrency-limit', 'access-log', 'metrics', 'trace-context', 'opentelemetry'],
    });
    for (const [point, registry] of Object.entries(ext) as Array<[keyof Extensions, Extensions[keyof Extensions]]>) {
      for (const name of registry.names()) {
        const instance = registry.create({ type: name, options: REQUIRED_OPTIONS[`${point}/${name}`] ?? {} }) as unknown as Record<string, unknown>;
        expect(instance, `${point}/${name}`).toBeTruthy();
        if (point !== 'registry') expect(instance['name'], `${point}/${name}`).toBe(name);
        if (point === 'registry') await (instance as unknown as { close(): Promise<void> }).close();
      }
    }
  });

  it('registers serializers with their wire ids', () => {
    const ext = defaultExtensions();
    expect(['msgpack', 'json', 'protobuf'].map((name) => ext.serializer.uniqueKey(name))).toEqual([1, 2, 3]);
    expect(ext.serializer.create('json').id).toBe(2);
  });

  it('gives every call a new, independent set of registries', () => {
    const a = defaultExtensions();
    const b = defaultExtensions();
    a.loadbalance.register('only-in-a', () => ({
      name: 'only-in-a',
      select: (providers) => ({ provider: providers[0]!, policy: 'only-in-a', branch: 'pick' }),
    }));
    expect(b.loadbalance.has('only-in-a')).toBe(false);
  });

  it('lets two contexts in one process differ', async () => {
    const base = await createContext({ packageJson: false });
    const other = await createContext({ packageJson: false });
    base.extensions.filter.register('audit', () => ({ name: 'audit', order: 0, sides: ['consumer'], invoke: (invocation, next) => next(invocation) }));
    expect(other.extensions.filter.has('audit')).toBe(false);
  });
});
