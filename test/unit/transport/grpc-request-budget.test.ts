import http2 from 'node:http2';
import grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { internalsOf } from '../../../src/transport/grpc/request-budget.js';

/*
 * The request budget reads two fields grpc-js keeps on its own server call (the HTTP/2 stream and
 * the request's grpc-encoding): this pins them against the installed grpc-js, so an upgrade that
 * renames them fails here instead of quietly inflating compressed requests again.
 */
describe("grpc-js's server call, as the request budget reads it", () => {
  it('has the HTTP/2 stream and the grpc-encoding of the request', async () => {
    const seen: ReturnType<typeof internalsOf>[] = [];
    const server = new grpc.Server({
      interceptors: [
        (_method, next) => {
          seen.push(internalsOf(next));
          return new grpc.ServerInterceptingCall(next);
        },
      ],
    });
    const identity = (bytes: Buffer): Buffer => bytes;
    server.register('/t.S/m', (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.alloc(0)), identity, identity, 'unary');
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      for (const encoding of ['gzip', undefined]) {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/t.S/m',
          'content-type': 'application/grpc',
          te: 'trailers',
          ...(encoding === undefined ? {} : { 'grpc-encoding': encoding }),
        });
        stream.resume();
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
        await new Promise((resolve) => stream.once('close', resolve));
      }
    } finally {
      session.destroy();
      server.forceShutdown();
    }
    expect(seen.map((internals) => internals.encoding)).toEqual(['gzip', 'identity']);
    for (const internals of seen) expect(typeof internals.stream?.close).toBe('function');
  });
});
