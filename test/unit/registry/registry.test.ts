import { homedir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DirectRegistry } from '../../../src/registry/direct.js';
import { MemoryRegistry } from '../../../src/registry/memory.js';
import { resolveRegistry as resolveWith, type ServiceInstance } from '../../../src/registry/registry.js';
import { defaultExtensions } from '../../../src/spi/extensions.js';
import { providerRecord } from '../../helpers/fake-transport.js';

const registries = defaultExtensions().registry;
const resolveRegistry = (spec: Parameters<typeof resolveWith>[0]) => resolveWith(spec, registries);

const record = (port: number, version = '1.0.0'): ServiceInstance =>
  providerRecord(port, { service: 'inference.LLM', version, host: '127.0.0.1', methods: [] });

describe('MemoryRegistry', () => {
  it('gives a snapshot at once and the whole list on every change', async () => {
    const registry = new MemoryRegistry();
    await registry.register(record(1));
    const seen: number[][] = [];
    const subscription = await registry.subscribe({ service: 'inference.LLM', version: '1.0.0' }, (list) => seen.push(list.map((i) => i.port)));
    await registry.register(record(2));
    await registry.register(record(3, '2.0.0'));
    await registry.unregister(record(1));
    subscription.close();
    await registry.register(record(4));
    expect(seen).toEqual([[1], [1, 2], [2]]);
  });
});

describe('DirectRegistry', () => {
  it('parses shuttle:// lists, IPv6 included', async () => {
    const registry = DirectRegistry.fromUrl('shuttle://127.0.0.1:20880,[::1]:20881');
    let got: readonly ServiceInstance[] = [];
    await registry.subscribe({ service: 'x' }, (list) => (got = list));
    expect(got.map((i) => `${i.host}:${i.port}`)).toEqual(['127.0.0.1:20880', '::1:20881']);
    expect(got[0]?.service).toBe('x');
  });

  it.each(['shuttle://', 'shuttle://host', 'shuttle://host:0', 'shuttle://host:70000', 'shuttle://a:1,'])('rejects %j with the allowed form', (url) => {
    expect(() => DirectRegistry.fromUrl(url)).toThrow(/allowed: host:port with a port from 1 to 65535/);
  });
});

describe('resolveRegistry', () => {
  it('names the accepted forms on a bad value', () => {
    expect(() => resolveRegistry('zk://x:1')).toThrow(
      /invalid registry: "zk:\/\/x:1" \(allowed: a URL whose scheme is a registered registry \(memory:\/\/, shuttle:\/\/, file:\/\/, etcd:\/\/\)/,
    );
    expect(() => resolveRegistry('memory://a/b')).toThrow(/invalid registry: "memory:\/\/a\/b" \(allowed: memory:\/\/NAME/);
    expect(() => resolveRegistry({ type: 'memory', options: { nmae: 'x' } })).toThrow(/unknown option memory registry options\.nmae \(known: url, name\)/);
  });

  it('quotes a URL with an unknown scheme without its user and password (a typo must not print the password)', () => {
    expect(() => resolveRegistry('etdc://ops:s3cret@127.0.0.1:2379')).toThrow(/^shuttle-rpc: invalid registry: "etdc:\/\/\*\*\*@127\.0\.0\.1:2379" \(allowed:/);
  });

  it('refuses a file registry folder starting with ~, which only a shell expands, saying what to write', () => {
    for (const spec of ['file://~/shuttle', { type: 'file', options: { dir: '~/shuttle' } }] as const) {
      expect(() => resolveRegistry(spec)).toThrow(
        new RegExp(
          `invalid file registry dir: "~/shuttle" \\(allowed: a folder path; ~ is not expanded: write the absolute path, e\\.g\\. file://${homedir()}/shuttle\\)`,
        ),
      );
    }
  });

  it('resolves memory:// URLs to one process-wide registry per name', () => {
    expect(resolveRegistry('memory://')).toBe(resolveRegistry('memory://default'));
    expect(resolveRegistry('memory://a')).toBe(MemoryRegistry.named('a'));
    expect(resolveRegistry('memory://a')).not.toBe(resolveRegistry('memory://b'));
  });
});
