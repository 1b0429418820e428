import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import type { FakeEngine } from 'shuttle-rpc/testing';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Clients abusing the gateway's admission queue, every piece real on loopback: a fake engine
 * that generates 2,000 tokens 1 ms apart whatever a request leaves out, a 4-slot engine worker,
 * and a gateway whose tenants may spend 1,500 tokens a minute each.
 */
let fleet: GatewayFleet | undefined;
let engine: FakeEngine;
let gateway: Gateway;

beforeAll(async () => {
  fleet = await startGatewayFleet({
    engine: { models: ['m'], tokens: 2000, tokenDelayMs: 1 },
    gateway: { log: false, admission: { maxWaitMs: 2000, tenantDefaults: { tokensPerMinute: 1500 } } },
  });
  ({ engine, gateway } = fleet);
  // The first request waits for the registry's first answer; later ones find the worker at once.
  const warm = await chat('warm-up', { max_tokens: 1 });
  expect(warm.status).toBe(200);
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

function chat(tenant: string, extra: Record<string, unknown> = {}, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': tenant, ...headers },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra }),
    signal,
  });
}

/** The engine's streams settle (the warm-up's, a previous test's cancellations). */
async function engineQuiet(): Promise<void> {
  await waitUntil(() => engine.open === 0, 'the engine to have no stream open', 10_000);
}

describe('a client that sends its request and closes the connection at once', () => {
  it('is not queued, and a worker call it started is cancelled', async () => {
    await engineQuiet();
    const completedBefore = engine.completed;
    // A fresh gateway: its first requests wait for the registry's first answer, and their
    // clients are gone by the time the handlers go on.
    const fresh = await startGateway({ port: 0, client: { registry: `file://${fleet!.dir.dir}`, config: false, log: false }, log: false });
    try {
      const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'nobody reads this' }], max_tokens: 2000 });
      const sockets = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<net.Socket>((resolve, reject) => {
              const socket = net.connect(fresh.port, '127.0.0.1', () => resolve(socket));
              socket.on('error', reject);
            }),
        ),
      );
      sockets.forEach((socket, i) => {
        socket.on('error', () => {});
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-tenant-id: ghost-${i}\r\n` +
            `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        );
        socket.destroy();
      });
      // Without the fix the first four ran 2,000 tokens each for nobody and sixteen waited
      // behind them; a call that started before the close was seen is cancelled at once.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect({ open: engine.open, completed: engine.completed - completedBefore }).toEqual({ open: 0, completed: 0 });
      // The fleet is free for a client who stays: answered at once, not behind 20 ghosts.
      const started = performance.now();
      const answer = await fetch(`${fresh.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant-id': 'present' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
      });
      expect(answer.status).toBe(200);
      expect(performance.now() - started).toBeLessThan(1500);
    } finally {
      await fresh.close();
    }
  }, 30_000);
});

describe('odd x-priority headers', () => {
  it('are a 400 naming the header, Object.prototype names among them', async () => {
    for (const value of ['constructor', '__proto__', 'toString', '-1', '10', '1e9', '5.0', '']) {
      const response = await chat('odd-priority', { max_tokens: 1 }, undefined, { 'x-priority': value });
      expect({ value, status: response.status }).toEqual({ value, status: 400 });
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain(
        'x-priority header must be low, normal, high or an integer from 0 to 9',
      );
    }
    const high = await chat('odd-priority', { max_tokens: 1 }, undefined, { 'x-priority': 'HIGH' });
    expect(high.status).toBe(200);
  });
});

describe('a tenant that reads a long answer and leaves just before its end', () => {
  it('is charged the tokens it was sent, not its estimate', async () => {
    await engineQuiet();
    // No max_tokens: estimated at 257 tokens, while the engine generates 2,000.
    const leaving = new AbortController();
    const response = await chat('leaver', { stream: true }, leaving.signal);
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let tokens = 0;
    while (tokens < 1900) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      for (let at = text.indexOf('"delta":{"content":'); at >= 0; at = text.indexOf('"delta":{"content":', at + 1)) tokens++;
      text = text.slice(text.lastIndexOf('\n\n') + 2);
    }
    leaving.abort();
    expect(tokens).toBeGreaterThanOrEqual(1900);
    await engineQuiet();
    // Its 1,500 tokens a minute are spent: its next call is not admitted within the gateway's
    // 2 s maxWaitMs (refused for its deadline, or timed out waiting for the bucket). Charged
    // the estimate only, it would have gone at once.
    const next = await chat('leaver', { max_tokens: 1 });
    expect([429, 504]).toContain(next.status);
  }, 30_000);
});

describe('requests that wait in the queue', () => {
  it('hold what the call needs, not the fields the gateway ignores (16 queued bodies of 2 MiB each)', async () => {
    await engineQuiet();
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // The worker's 4 slots taken by generations of 2,000 tokens, 1 ms apart.
    const holders = Array.from({ length: 4 }, () => new AbortController());
    const held = holders.map((holder, i) => chat(`holder-${i}`, { stream: true }, holder.signal));
    await waitUntil(() => engine.open === 4, 'the worker to be full');
    gc();
    const before = process.memoryUsage().heapUsed;
    // Sent from one buffer over raw sockets, so this process holds no copy of the bodies.
    const body = Buffer.from(
      JSON.stringify({
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 10,
        prediction: { type: 'content', content: 'x'.repeat(2 * 1024 * 1024) },
      }),
    );
    const sockets = await Promise.all(
      Array.from(
        { length: 16 },
        (_, i) =>
          new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect(gateway.port, '127.0.0.1', () => {
              socket.write(
                `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-tenant-id: queued-${i}\r\ncontent-length: ${body.length}\r\n\r\n`,
              );
              socket.write(body, () => resolve(socket));
            });
            socket.on('error', reject);
          }),
      ),
    );
    try {
      // Parsed and waiting for a slot (the holders take 2 s).
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(engine.open).toBe(4);
      gc();
      const grew = process.memoryUsage().heapUsed - before;
      expect(grew).toBeLessThan(12 * 1024 * 1024);
    } finally {
      for (const socket of sockets) socket.destroy();
      for (const holder of holders) holder.abort();
      await Promise.allSettled(held);
    }
  }, 30_000);
});
