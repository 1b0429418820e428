import http2 from 'node:http2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createServer } from 'shuttle-rpc';
import { EchoService } from '../fixtures/services.js';
import { envelopeMessage } from '../helpers/budget.js';
import { HOUR_MS, stepWallClock } from '../helpers/wall-clock.js';

/*
 * A gRPC request waiting for the provider's read budget is judged expired on the monotonic
 * clock: a wall-clock step forward while it waits must not leave it unread until its deadline.
 */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a gRPC request waiting for a read across a wall-clock step forward', () => {
  it('is read and answered once a read slot frees, not left to its deadline', async () => {
    // The wall clock made steppable before grpc-js stamps the request's deadline.
    stepWallClock(0);
    const server = await createServer({
      services: [new EchoService()],
      registry: false,
      config: false,
      limits: { frameTimeoutMs: 300 },
      extraTransports: [{ transport: { type: 'grpc', options: {} } }],
    });
    cleanups.push(() => server.close());
    const port = server.endpoints.find((endpoint) => endpoint.protocol === 'grpc')!.port;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    cleanups.push(() => session.destroy());
    const headers = { ':method': 'POST', ':path': '/test.Echo/add', 'content-type': 'application/grpc', te: 'trailers', 'shuttle-service-version': '1.0.0' };
    // Four reads that never complete hold this connection's read slots until frameTimeoutMs.
    const whole = envelopeMessage({ a: 1, b: 2 });
    for (let i = 0; i < 4; i++) {
      const stalled = session.request(headers);
      stalled.on('error', () => {});
      stalled.resume();
      stalled.write(whole.subarray(0, 3));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    const waiting = session.request({ ...headers, 'grpc-timeout': '5S' });
    waiting.end(whole);
    waiting.resume();
    const status = new Promise<string>((resolve) => {
      const read = (answer: http2.IncomingHttpHeaders): void => {
        if (answer['grpc-status'] !== undefined) resolve(String(answer['grpc-status']));
      };
      waiting
        .on('response', read)
        .on('trailers', read)
        .on('error', () => resolve('error'));
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    stepWallClock(HOUR_MS);
    expect(await status).toBe('0');
    expect(performance.now() - started).toBeLessThan(2500);
  });
});
