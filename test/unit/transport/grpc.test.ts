import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeCertificates } from '../../helpers/certs.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { loadProtoFiles } from '../../../src/serializer/protobuf.js';
import { createJsonSerializer } from '../../../src/serializer/json.js';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import { SerializerSet } from '../../../src/serializer/serializer.js';
import { ENVELOPE_TYPE, GrpcRoutes } from '../../../src/transport/grpc/codec.js';
import { resolveGrpcSettings } from '../../../src/transport/grpc/settings.js';
import { errorToStatus, fromGrpcMetadata, statusToError, toGrpcMetadata } from '../../../src/transport/grpc/status.js';

const protoFile = fileURLToPath(new URL('../../fixtures/grpc.proto', import.meta.url));
const serializers = new SerializerSet([createMsgpackSerializer({}), createJsonSerializer({})]);
const msgpack = serializers.byName('msgpack');
const json = serializers.byName('json');
const routes = new GrpcRoutes(loadProtoFiles([protoFile], 'test', false));

/** The `message Envelope` block of docs/PROTOCOL.md, so that the documented contract is the one tested. */
function documentedEnvelope(): protobuf.Type {
  const doc = readFileSync(fileURLToPath(new URL('../../../docs/PROTOCOL.md', import.meta.url)), 'utf8');
  const block = /```proto\n([\s\S]*?message Envelope[\s\S]*?)```/.exec(doc)?.[1];
  expect(block, 'docs/PROTOCOL.md has a proto block with message Envelope').toBeDefined();
  return protobuf.parse(block!).root.lookupType('shuttle.v1.Envelope');
}

describe('grpc routes', () => {
  it('a service in the .proto is served at its rpc paths, with its stream kinds', () => {
    expect(routes.route('test.Echo', 'add')).toMatchObject({ path: '/test.Echo/Add', protoStream: false });
    expect(routes.route('test.Stream', 'count')).toMatchObject({ path: '/test.Stream/Count', protoStream: true });
    // Only what the .proto declares: test.Echo's echo has no rpc.
    expect(routes.route('test.Echo', 'echo')).toBeUndefined();
  });

  it('a service the .proto does not declare goes through the envelope at /service/method', () => {
    expect(routes.route('test.Plain', 'echo')).toMatchObject({ path: '/test.Plain/echo', protoStream: undefined });
    expect(new GrpcRoutes(undefined).route('test.Echo', 'add')).toMatchObject({ path: '/test.Echo/add', protoStream: undefined });
  });

  it('protobuf bodies: the declared messages, field names in lowerCamelCase, bad values named', () => {
    const count = routes.route('test.Stream', 'count')!;
    const bytes = count.encodeRequest({ n: 3, delayMs: 7 }, msgpack);
    expect(count.decodeRequest(bytes, serializers).value).toEqual({ n: 3, delayMs: 7 });
    const add = routes.route('test.Echo', 'add')!;
    expect(() => add.encodeRequest({ a: 'two' }, msgpack)).toThrow(
      /test\.Echo\.add request does not fit test\.AddRequest: request\.a is the string "two", not a number for double/,
    );
    const garbage = (): unknown => add.decodeRequest(Buffer.from([0xff, 0xff, 0xff]), serializers);
    expect(garbage).toThrow(RpcError);
    expect(garbage).toThrow(/invalid argument.*cannot decode request of test\.Echo\.add as test\.AddRequest/);
  });

  it("a protobuf stream's JSON trailer is priced before it is parsed: one nested past the decode limits is INTERNAL naming the method", () => {
    const count = routes.route('test.Stream', 'count')!;
    expect(count.decodeTrailer(count.encodeTrailer({ total: 3 }, msgpack), msgpack)).toEqual({ total: 3 });
    const deep = Buffer.from(`${'{"a":'.repeat(200)}0${'}'.repeat(200)}`);
    expect(() => count.decodeTrailer(deep, msgpack)).toThrow(/cannot decode the stream trailer of test\.Stream\.count as JSON: .*(depth|deep|nest)/i);
  });

  it('the envelope is the message documented in docs/PROTOCOL.md, byte for byte', () => {
    const documented = documentedEnvelope();
    const plain = routes.route('test.Plain', 'echo')!;
    for (const serializer of [msgpack, json]) {
      const value = { text: 'héllo', list: [1, 2, 3] };
      const bytes = plain.encodeRequest(value, serializer);
      const decoded = documented.toObject(documented.decode(bytes), { defaults: true }) as { body: Uint8Array; serializer: string };
      // msgpack, the default, is named by leaving the field empty.
      expect(decoded.serializer).toBe(serializer === msgpack ? '' : 'json');
      expect(serializer.decode(decoded.body, { service: 'test.Plain', method: 'echo', kind: 'request' })).toEqual(value);
      const expected = documented
        .encode(
          documented.fromObject({ body: serializer.encode(value, { service: 'test.Plain', method: 'echo', kind: 'request' }), serializer: decoded.serializer }),
        )
        .finish();
      expect(Buffer.from(bytes)).toEqual(Buffer.from(expected));
      expect(plain.decodeRequest(bytes, serializers)).toEqual({ value, serializer });
    }
    expect(ENVELOPE_TYPE.fullName).toBe('.shuttle.v1.Envelope');
  });

  it('an envelope naming an unknown serializer is UNIMPLEMENTED, listing the known ones', () => {
    const bytes = ENVELOPE_TYPE.encode({ body: new Uint8Array([1]), serializer: 'cbor' }).finish();
    const error = ((): unknown => {
      try {
        return routes.route('test.Plain', 'echo')!.decodeRequest(Buffer.from(bytes), serializers);
      } catch (thrown) {
        return thrown;
      }
    })() as RpcError;
    expect(error).toMatchObject({ code: RpcCode.UNIMPLEMENTED });
    expect(error.message).toMatch(/names serializer "cbor"; this provider speaks msgpack, json/);
  });

  it('a client-streaming rpc is refused with its name (shuttle serves unary and server streaming)', () => {
    const root = protobuf.parse('syntax = "proto3"; package x; service Up { rpc Push (stream M) returns (M); } message M {}').root;
    expect(() => new GrpcRoutes(root).route('x.Up', 'push')).toThrow(/rpc x\.Up\.Push is client-streaming/);
  });
});

describe('grpc status and metadata', () => {
  it('an RpcError crosses as its own code and message, details and retry hint in shuttle-error-bin', () => {
    const status = errorToStatus(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'no free KV blocks', { details: { slots: 0 }, retryAfterMs: 250 }));
    expect(status).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'no free KV blocks' });
    const back = statusToError({ code: status.code!, details: status.details!, metadata: status.metadata! });
    expect(back).toMatchObject({
      code: RpcCode.RESOURCE_EXHAUSTED,
      rawMessage: 'no free KV blocks',
      details: { slots: 0 },
      retryAfterMs: 250,
      retryable: true,
    });
  });

  it('every gRPC status code maps to the RpcCode of the same number; anything else is UNKNOWN', () => {
    for (let code = 1; code <= 16; code++) expect(statusToError({ code, details: 'x' }).code).toBe(code);
    expect(statusToError({ code: 99 as grpc.status, details: 'odd' }).code).toBe(RpcCode.UNKNOWN);
    const metadata = new grpc.Metadata();
    metadata.set('shuttle-error-bin', Buffer.from('{not json'));
    expect(statusToError({ code: grpc.status.INTERNAL, details: '', metadata })).toMatchObject({ code: RpcCode.INTERNAL, rawMessage: 'no message' });
  });

  it('a shuttle-error-bin trailer is priced before it is parsed: deep, wide or large ones leave only the code and message', () => {
    const trailer = (json: string): RpcError => {
      const metadata = new grpc.Metadata();
      metadata.set('shuttle-error-bin', Buffer.from(json));
      return statusToError({ code: grpc.status.UNAVAILABLE, details: 'down', metadata });
    };
    // Within the limits, the details arrive.
    expect(trailer('{"details":{"a":[1,2]}}')).toMatchObject({ code: RpcCode.UNAVAILABLE, rawMessage: 'down', details: { a: [1, 2] } });
    const wide = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, 0]));
    for (const hostile of [
      `{"details":${'{"a":'.repeat(40)}0${'}'.repeat(40)}}`,
      JSON.stringify({ details: wide }),
      JSON.stringify({ details: { text: 'x'.repeat(70 * 1024) } }),
    ]) {
      const error = trailer(hostile);
      expect(error).toMatchObject({ code: RpcCode.UNAVAILABLE, rawMessage: 'down' });
      expect(error.details).toBeUndefined();
    }
  });

  it('metadata: headers in, gRPC and HTTP headers out; a key gRPC cannot carry is INVALID_ARGUMENT naming it', () => {
    const metadata = toGrpcMetadata({ 'x-tenant': 'acme', traceparent: '00-abc' }, '1.0.0', 'gpu');
    expect(metadata.getMap()).toEqual({ 'x-tenant': 'acme', traceparent: '00-abc', 'shuttle-service-version': '1.0.0', 'shuttle-service-group': 'gpu' });
    metadata.set('grpc-accept-encoding', 'gzip');
    metadata.set('user-agent', 'grpc-node-js/1');
    expect(fromGrpcMetadata(metadata)).toEqual({ 'x-tenant': 'acme', traceparent: '00-abc' });
    expect(() => toGrpcMetadata({ 'bad key': 'x' }, '', '')).toThrow(/invalid argument.*metadata cannot be sent over grpc.*bad key/);
    expect(() => toGrpcMetadata({ ok: 5 as unknown as string }, '', '')).toThrow(/metadata "ok" must be a string, got number/);
  });

  it('metadata arrives in a null-prototype object, as over tcp: every key is one the caller sent, __proto__ included', () => {
    const metadata = new grpc.Metadata();
    metadata.set('constructor', 'c');
    // A foreign client can send this key (grpc-js's getMap loses it: it is read by name).
    metadata.set('__proto__', 'p');
    const meta = fromGrpcMetadata(metadata);
    expect(Object.getPrototypeOf(meta)).toBeNull();
    expect(Object.keys(meta).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(meta, '__proto__')?.value).toBe('p');
    expect(meta['toString']).toBeUndefined();
    // grpc-js would drop it on the way out: refused before sending, naming it.
    expect(() => toGrpcMetadata(JSON.parse('{"__proto__":"p"}') as Record<string, string>, '', '')).toThrow(
      /metadata "__proto__" is a key @grpc\/grpc-js drops/,
    );
  });
});

describe('grpc transport options', () => {
  it.each([
    [{ protoFile: 'x.proto' }, /unknown option grpc transport options\.protoFile/],
    [{ protoFiles: 'x.proto' }, /grpc transport protoFiles.*a non-empty list of local \.proto file paths/],
    [{ keepaliveTimeMs: -1 }, /grpc transport keepaliveTimeMs/],
    [{ channelOptions: { 'grpc.x': true } }, /channelOptions\["grpc\.x"\].*a string or a number/],
    [{ tls: { cert: '/nonexistent/server.crt', key: '/nonexistent/server.key' } }, /grpc transport tls\.cert.*a readable PEM file \(ENOENT\)/],
    [{ tls: { cert: '-----BEGIN CERTIFICATE-----' } }, /grpc transport tls.*cert and key together/],
    [{ tls: { ca: 'x', verify: false } }, /unknown option grpc transport tls\.verify/],
  ])('%j is refused with a message naming the key', (options, message) => {
    expect(() => resolveGrpcSettings(options as Record<string, unknown>)).toThrow(message);
  });

  it('a provider with requireClientCert needs the CA that signs client certificates', () => {
    const dir = makeCertificates();
    const pem = (name: string): string => readFileSync(path.join(dir, name), 'utf8');
    const settings = resolveGrpcSettings({ tls: { cert: pem('server.crt'), key: pem('server.key'), requireClientCert: true } });
    expect(() => settings.serverCredentials()).toThrow(/tls\.ca.*required with requireClientCert/);
  });
});
