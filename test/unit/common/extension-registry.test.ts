import { describe, expect, it } from 'vitest';
import { ExtensionRegistry } from '../../../src/common/extension-registry.js';

interface Greeter {
  greet(): string;
}
const isGreeter = (value: unknown): value is Greeter => typeof (value as Greeter)?.greet === 'function';

function registry(): ExtensionRegistry<Greeter> {
  const greeters = new ExtensionRegistry<Greeter>('greeter', isGreeter);
  greeters.register('plain', () => ({ greet: () => 'hello' }));
  greeters.register('loud', (options) => ({ greet: () => `HELLO${'!'.repeat(Number(options['marks'] ?? 1))}` }));
  return greeters;
}

describe('ExtensionRegistry', () => {
  it('creates by name, by { type, options }, and passes instances through', () => {
    const greeters = registry();
    expect(greeters.create('plain').greet()).toBe('hello');
    expect(greeters.create({ type: 'loud', options: { marks: 3 } }).greet()).toBe('HELLO!!!');
    const mine = { greet: () => 'mine' };
    expect(greeters.create(mine)).toBe(mine);
    expect(greeters.has('loud')).toBe(true);
    expect(greeters.names()).toEqual(['plain', 'loud']);
  });

  it('names the known implementations when a name is unknown', () => {
    expect(() => registry().create('quiet', 'client.greeter')).toThrow(
      'shuttle-rpc: invalid client.greeter: "quiet" (allowed: one of the registered greeter extensions: plain, loud)',
    );
  });

  it('rejects malformed specs with the key named', () => {
    const greeters = registry();
    expect(() => greeters.create(42 as never, 'greeter')).toThrow(/invalid greeter: 42 \(allowed: a greeter name \(plain, loud\)/);
    expect(() => greeters.create({ type: 'plain', option: {} } as never)).toThrow(/unknown option greeter\.option \(known: type, options\)/);
    expect(() => greeters.create({ type: 'plain', options: [] } as never)).toThrow(/invalid greeter\.options: array\(0\) \(allowed: an object\)/);
  });

  it('refuses a second registration of a name unless it says override', () => {
    const greeters = registry();
    expect(() => greeters.register('plain', () => ({ greet: () => 'hijacked' }))).toThrow(
      /greeter "plain" is already registered; a plugin may replace it only with register\(name, factory, \{ override: true \}\)/,
    );
    greeters.register('plain', () => ({ greet: () => 'replaced' }), { override: true });
    expect(greeters.create('plain').greet()).toBe('replaced');
  });

  it('refuses a unique key claimed by another name, and requires one where the point needs it', () => {
    const serializers = new ExtensionRegistry<Greeter>('serializer', isGreeter, 'wire id');
    serializers.register('a', () => ({ greet: () => 'a' }), { uniqueKey: 7 });
    expect(() => serializers.register('b', () => ({ greet: () => 'b' }), { uniqueKey: 7 })).toThrow(
      'shuttle-rpc: serializer "b" claims wire id 7, already claimed by "a"',
    );
    expect(() => serializers.register('c', () => ({ greet: () => 'c' }))).toThrow(/serializer "c" must be registered with its wire id/);
    serializers.register('a', () => ({ greet: () => 'a2' }), { uniqueKey: 7, override: true });
    expect(serializers.uniqueKey('a')).toBe(7);
  });

  it('refuses names that are not simple identifiers and factories that are not functions', () => {
    const greeters = registry();
    expect(() => greeters.register('-x', () => ({ greet: () => '' }))).toThrow(/invalid greeter extension name: "-x"/);
    expect(() => greeters.register('x', 'nope' as never)).toThrow(/invalid greeter x factory/);
  });

  it('clones into an independent registry', () => {
    const original = registry();
    const copy = original.clone();
    copy.register('extra', () => ({ greet: () => 'extra' }));
    expect(copy.has('extra')).toBe(true);
    expect(original.has('extra')).toBe(false);
  });

  it('names the extension whose factory fails, or makes something that is not the extension', () => {
    const greeters = registry();
    greeters.register('broken', () => {
      throw new Error('cannot reach the greeting service');
    });
    greeters.register('hollow', () => ({}) as Greeter);
    greeters.register('strict', (options) => {
      if (options['marks'] !== undefined) throw new TypeError('shuttle-rpc: invalid marks');
      return { greet: () => 'hi' };
    });
    expect(() => greeters.create('broken', 'greeter')).toThrow(
      new TypeError('shuttle-rpc: the greeter extension "broken" (greeter) failed to start: cannot reach the greeting service'),
    );
    expect(() => greeters.create('hollow', 'greeters[1]')).toThrow(
      new TypeError('shuttle-rpc: the greeter extension "hollow" (greeters[1]) made an object, not a greeter (its factory must return one)'),
    );
    // The TypeError a factory throws for bad options is its own message, as it is.
    expect(() => greeters.create({ type: 'strict', options: { marks: 2 } })).toThrow(new TypeError('shuttle-rpc: invalid marks'));
  });
});
