import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type Endpoint, type Proxied, type RpcClient } from 'shuttle-rpc';
import type { PlainApi } from '../fixtures/plain-service.js';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture, type Child } from '../helpers/process.js';
import { rejection } from '../helpers/wait.js';

/*
 * What a value becomes between real processes, on every serializer and transport: the
 * receiver gets the same value, or the sender gets an error naming the value's path before
 * anything is sent (the handler's call count does not move). Nothing pollutes a prototype on
 * either side.
 */
let provider: Child;
let grpcPort: number;
const clients: RpcClient[] = [];
let control: Proxied<EchoApi>;

beforeAll(async () => {
  provider = await startFixture('provider', { PROVIDER_GRPC: '1' });
  grpcPort = (provider.announced['endpoints'] as Endpoint[]).find((endpoint) => endpoint.protocol === 'grpc')!.port;
  const tcp = await createClient({ registry: provider.url, timeoutMs: 10_000, config: false });
  clients.push(tcp);
  control = tcp.proxy<EchoApi>('test.Echo');
});
afterAll(async () => {
  for (const client of clients) await client.close();
  await provider?.stop();
});

const COMBINATIONS = [
  ['tcp', 'msgpack'],
  ['grpc', 'msgpack'],
  ['tcp', 'json'],
  ['grpc', 'json'],
] as const;

async function plainProxy(transport: 'tcp' | 'grpc', serializer: 'msgpack' | 'json'): Promise<Proxied<PlainApi>> {
  const url = transport === 'tcp' ? provider.url : `shuttle://127.0.0.1:${grpcPort}`;
  const client = await createClient({ registry: url, transport, serializer, timeoutMs: 10_000, config: false });
  clients.push(client);
  return client.proxy<PlainApi>('test.Plain');
}

/** Values msgpack refuses before sending, with the path and the words the error must hold. */
function msgpackRefused(): Array<[string, unknown, string]> {
  return [
    ['a Set', { tags: new Set(['a']) }, 'request.tags is a Set'],
    ['a Set inside a Map', new Map([['k', [new Set([1])]]]), 'request.get("k")[0] is a Set'],
    ['an Error', [new Error('boom')], 'request[0] is an Error'],
    ['a RegExp', { pattern: /x/ }, 'request.pattern is a RegExp'],
    ['a __proto__ key', JSON.parse('{"a":{"__proto__":{"polluted":true}}}'), 'request.a.__proto__ is the key "__proto__"'],
    ['a lone surrogate', { text: 'ok \ud83d' }, 'request.text is a string with a lone surrogate'],
    ['a lone surrogate in a key', { ['\udc00']: 1 }, 'request["\\udc00"] is a key with a lone surrogate'],
    ['a function', { callback() {} }, 'request.callback is a function'],
    ['a Map with a number key', new Map([[1, 'one']]), 'request.keys()[0] is a Map key of type number'],
    ['a boxed string', { s: new String('x') }, 'request.s is a String object'],
    ['a Promise', { p: Promise.resolve(1) }, 'request.p is a Promise'],
    ['nesting past the decoder limit', JSON.parse(`${'['.repeat(70)}${']'.repeat(70)}`), 'is nested deeper than 64 levels'],
  ];
}

/** Values each serializer must deliver exactly. */
const FAITHFUL: Record<'msgpack' | 'json', Array<[string, unknown]>> = {
  msgpack: [
    ['BigInt past 2^64', { n: 2n ** 70n, m: -(2n ** 63n) }],
    ['int64 past 2^53', { n: 2n ** 60n + 1n }],
    ['NaN and Infinity', [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]],
    ['a Date', { at: new Date(1_700_000_000_123) }],
    ['undefined in an array and as a field', { list: [1, undefined, 3], field: undefined }],
    ['typed arrays and a Buffer', { f32: new Float32Array([1.5, -2]), u8: new Uint8Array([0, 255]), buffer: Buffer.from('hi') }],
    ['a surrogate pair', { text: 'rocket 🚀' }],
    ['constructor and prototype keys', { constructor: { prototype: { polluted: true } }, prototype: 1 }],
  ],
  json: [
    ['a __proto__ key', JSON.parse('{"a":{"__proto__":{"polluted":true}}}')],
    ['constructor and prototype keys', { constructor: { prototype: { polluted: true } }, prototype: 1 }],
    ['lone surrogates', { text: 'ok \ud83d', ['\udc00']: 1 }],
    ['a number past 2^53 as a double', { n: 2 ** 53 + 2 }],
  ],
};

/** The caller's own metadata keys, without those shuttle adds (`shuttle-timeout-ms`, …). */
function userKeys(seen: { keys: string[]; prototype: boolean }): { keys: string[]; prototype: boolean } {
  return { keys: seen.keys.filter((key) => !key.startsWith('shuttle-')), prototype: seen.prototype };
}

describe.each(COMBINATIONS)('%s / %s', (transport, serializer) => {
  let plain: Proxied<PlainApi>;
  beforeAll(async () => {
    plain = await plainProxy(transport, serializer);
  });

  if (serializer === 'msgpack') {
    it.each(msgpackRefused())('refuses %s before sending, naming its path', async (_name, value, words) => {
      const before = await plain.echoes();
      const error = await rejection(plain.echo(value));
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.message).toContain(`cannot encode the request of test.Plain.echo as msgpack: `);
      expect(error.message).toContain(words);
      expect(await plain.echoes()).toBe(before);
    });
  }

  it.each(FAITHFUL[serializer])('delivers %s as it was sent', async (_name, value) => {
    expect(await plain.echo(value)).toEqual(value);
  });

  it('pollutes no prototype in either process, and metadata keys stay data', async () => {
    const metadata = JSON.parse('{"constructor":"b","tenant":"c"}') as Record<string, string>;
    expect(userKeys(await plain.metadataKeys(undefined, { metadata }))).toEqual({ keys: ['constructor', 'tenant'], prototype: false });
    const withProto = JSON.parse('{"__proto__":"a","tenant":"c"}') as Record<string, string>;
    if (transport === 'tcp') {
      expect(userKeys(await plain.metadataKeys(undefined, { metadata: withProto }))).toEqual({ keys: ['__proto__', 'tenant'], prototype: false });
    } else {
      // @grpc/grpc-js would drop the key on the way: refused before sending, naming it.
      const error = await rejection(plain.metadataKeys(undefined, { metadata: withProto }));
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.message).toContain('metadata "__proto__" is a key @grpc/grpc-js drops');
    }
    expect((await control.prototypeState()).polluted).toBe(false);
    expect('polluted' in {}).toBe(false);
  });
});

describe.each(['tcp', 'grpc'] as const)('a request past maxFrameBytes over %s', (transport) => {
  it('is refused before it is sent, naming the call and the limit', async () => {
    const plain = await plainProxy(transport, 'msgpack');
    const before = await plain.echoes();
    const error = await rejection(plain.echo('x'.repeat(9 * 2 ** 20)));
    expect(error.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(error.message).toMatch(/the request of test\.Plain\.echo is \d+ bytes, over maxFrameBytes 8388608, the largest message a peer accepts/);
    expect(await plain.echoes()).toBe(before);
  });
});

describe.each(['tcp', 'grpc'] as const)('an answer past maxFrameBytes over %s', (transport) => {
  it('fails naming the method and the limit, unary and as a stream chunk', async () => {
    const plain = await plainProxy(transport, 'msgpack');
    const answer = await rejection(plain.blob({ bytes: 9 * 2 ** 20 }));
    expect(answer.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(answer.message).toMatch(/the answer of test\.Plain\.blob is \d+ bytes, over maxFrameBytes 8388608/);
    const chunks: Uint8Array[] = [];
    const chunk = await rejection(
      (async () => {
        for await (const item of plain.blobs({ bytes: 9 * 2 ** 20, times: 2 })) chunks.push(item);
      })(),
    );
    expect(chunk.code).toBe(RpcCode.RESOURCE_EXHAUSTED);
    expect(chunk.message).toMatch(/chunk.* of test\.Plain\.blobs is \d+ bytes, over maxFrameBytes 8388608/);
    expect(chunks).toEqual([]);
    // The connection is still good.
    expect(await plain.echo('ok')).toBe('ok');
  });
});
