import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * The gateway's HTTP limits against slow and stalled clients, with the gateway in its own
 * process: a body trickled a byte every 2 s, half a header, a body that stops, an idle
 * keep-alive connection, and the request count per connection. A well-behaved client is
 * answered throughout.
 */
// The trickle below moves every 2 s, inside connectionTimeoutMs: only the request timeout can cut it.
const http = { headersTimeoutMs: 1500, requestTimeoutMs: 4000, connectionTimeoutMs: 2500, keepAliveTimeoutMs: 1000, maxRequestsPerSocket: 2 };
let gateway: Child;

beforeAll(async () => {
  gateway = await startFixture('gateway-process', { GATEWAY_HTTP: JSON.stringify(http) });
});
afterAll(() => gateway?.stop());

/** A raw HTTP client: what the gateway sent, and when it closed the connection (ms after open); fails past `withinMs`. */
async function rawExchange(write: (socket: net.Socket) => void, withinMs: number): Promise<{ received: string; closedAfterMs: number }> {
  const socket = net.connect(gateway.port, gateway.host);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const opened = Date.now();
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  write(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${withinMs} ms; received ${JSON.stringify(received)}`));
    }, withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ received, closedAfterMs: Date.now() - opened });
    });
  });
}

const healthy = async (): Promise<void> => {
  const response = await fetch(`${gateway.url}/health`);
  expect(response.status).toBe(200);
  await response.text();
};

describe('gateway HTTP limits', () => {
  it('a body sent a byte every 2 s is cut off within requestTimeoutMs (+1 s) with a 408; other clients are answered meanwhile', async () => {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] });
    let timer: NodeJS.Timeout | undefined;
    const slow = rawExchange((socket) => {
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      let sent = 0;
      const drip = (): void => {
        if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!);
      };
      drip();
      timer = setInterval(drip, 2000);
    }, 8000);
    for (let i = 0; i < 5; i++) {
      await healthy();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const { received, closedAfterMs } = await slow.finally(() => clearInterval(timer));
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(http.requestTimeoutMs - 500);
    expect(closedAfterMs).toBeLessThan(http.requestTimeoutMs + 1500);
  });

  it('half a header is cut off within headersTimeoutMs (+1 s)', async () => {
    const { received, closedAfterMs } = await rawExchange((socket) => socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty'), 6000);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(http.headersTimeoutMs - 500);
    expect(closedAfterMs).toBeLessThan(http.headersTimeoutMs + 1500);
  });

  it('a body that stops moving is closed after connectionTimeoutMs, before the request timeout', async () => {
    const { received, closedAfterMs } = await rawExchange(
      (socket) => socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mo'),
      6000,
    );
    expect(received).toBe('');
    expect(closedAfterMs).toBeGreaterThanOrEqual(http.connectionTimeoutMs - 100);
    expect(closedAfterMs).toBeLessThan(http.requestTimeoutMs);
  });

  it('an idle keep-alive connection is closed after keepAliveTimeoutMs; one connection serves at most maxRequestsPerSocket requests', async () => {
    const idle = await rawExchange((socket) => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'), 5000);
    expect(idle.received).toMatch(/^HTTP\/1\.1 200 /);
    expect(idle.received).toMatch(/connection: keep-alive/i);
    expect(idle.closedAfterMs).toBeGreaterThanOrEqual(http.keepAliveTimeoutMs - 300);
    expect(idle.closedAfterMs).toBeLessThan(http.keepAliveTimeoutMs + 1500);

    const busy = await rawExchange(
      (socket) => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n'),
      5000,
    );
    // Node answers the second with `Connection: close` and any further one with 503.
    expect(busy.received.match(/HTTP\/1\.1 \d+ /g)).toEqual(['HTTP/1.1 200 ', 'HTTP/1.1 200 ', 'HTTP/1.1 503 ']);
    expect(busy.received.split('HTTP/1.1 ')[2]).toMatch(/connection: close/i);
  });
});
