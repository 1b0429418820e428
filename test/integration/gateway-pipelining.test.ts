import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';

/*
 * Hostile HTTP clients against the gateway: one that pipelines several streaming requests on one
 * connection and leaves (the responses queued behind the first never see it go), and bodies
 * that cost far more to parse than their size.
 */
let dir: GatewayFleet['dir'];
let gateway: Gateway;
let fleet: GatewayFleet | undefined;

beforeAll(async () => {
  fleet = await startGatewayFleet({ engine: { models: ['m'], tokens: 1_000_000, tokenDelayMs: 1 }, gateway: { admission: { maxWaitMs: 3000 }, log: false } });
  ({ dir, gateway } = fleet);
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

function chat(maxTokens: number, extraHeaders = ''): string {
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: maxTokens, stream: true });
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${extraHeaders}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('pipelined requests', () => {
  it('a client that pipelines long streams and leaves gives back every admission slot: the next requests are all served', async () => {
    // Four connections, each with two long streams pipelined: the second of each is queued
    // behind the first. Each client reads a little, then goes.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const socket = net.connect({ host: '127.0.0.1', port: gateway.port });
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.on('error', () => {});
        socket.write(chat(100_000) + chat(100_000));
        await new Promise<void>((resolve) => socket.once('data', () => resolve()));
        await new Promise((resolve) => setTimeout(resolve, 300));
        socket.destroy();
      }),
    );
    // The worker has 4 slots: with any slot still held, some of these would wait past the
    // admission's 3 s and be refused.
    const statuses = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const response = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 }),
        });
        await response.arrayBuffer();
        return response.status;
      }),
    );
    expect(statuses).toEqual([200, 200, 200, 200]);
  }, 30_000);
});

describe('connection handling', () => {
  it('a streaming answer to a request that says Connection: close ends with the connection', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: gateway.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(chat(8, 'connection: close\r\n'));
    const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still open'), 5000))]);
    socket.destroy();
    expect(outcome).toBe('closed');
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(received).toMatch(/connection: close/i);
    expect(received).toContain('data: [DONE]');
  });
});

describe('request bodies', () => {
  it('refuses JSON nested deeper than 32 levels with a 400 before parsing it, in any field, and stays responsive', async () => {
    const deep = `${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}`;
    for (const body of [
      `{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":${deep}}`,
      `{"model":${deep}}`,
      `{"model":"m","messages":[{"role":${'['.repeat(5000)}${']'.repeat(5000)},"content":"hi"}]}`,
    ]) {
      const started = performance.now();
      const response = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const answer = (await response.json()) as { error: { message: string; type: string } };
      expect(response.status).toBe(400);
      expect(answer.error.message).toMatch(/the request body is refused: .*deeper than 32/);
      expect(performance.now() - started).toBeLessThan(1000);
    }
    // A well-formed request right after is answered.
    const ok = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 }),
    });
    expect(ok.status).toBe(200);
  });
});

describe('bodies still arriving', () => {
  it('share one budget: past http.maxBufferedBodyBytes a body is answered 503 with Retry-After, and the budget comes back when the senders go', async () => {
    const small = await startGateway({
      port: 0,
      client: { registry: `file://${dir.dir}`, config: false, log: false },
      http: { maxBufferedBodyBytes: 64 * 1024 },
      log: false,
    });
    try {
      const head = (length: number): string =>
        `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`;
      const stalled: net.Socket[] = [];
      const answers: string[] = [];
      for (let i = 0; i < 3; i++) {
        const socket = net.connect({ host: '127.0.0.1', port: small.port });
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.on('error', () => {});
        socket.on('data', (chunk: Buffer) => (answers[i] = (answers[i] ?? '') + chunk.toString()));
        // 30 KB of a declared 100 KB body, then nothing.
        socket.write(head(100_000) + `{"model":"m","pad":"${'x'.repeat(30_000)}`);
        stalled.push(socket);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(answers[2] ?? '').toMatch(/^HTTP\/1\.1 503/);
      expect(answers[2]).toMatch(/retry-after: \d+/i);
      expect(answers[2]).toMatch(/http\.maxBufferedBodyBytes 65536/);
      for (const socket of stalled) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const ok = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
      });
      expect(ok.status).toBe(200);
    } finally {
      await small.close();
    }
  });
});
