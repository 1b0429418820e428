import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import type { FakeEngine } from 'shuttle-rpc/testing';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Admission through the gateway, every piece real on loopback: a fake OpenAI-compatible engine,
 * a shuttle engine worker in front of it declaring 4 slots (it accepts 16 calls before it
 * sheds), and the gateway over the file registry. One client floods /v1/embeddings with 2,048
 * inputs a request; without admission each request became 2,048 concurrent worker calls and
 * every other client's chat request was shed with 429.
 */
let dir: GatewayFleet['dir'];
let engine: FakeEngine;
let gateway: Gateway;

const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

let fleet: GatewayFleet | undefined;

beforeAll(async () => {
  fleet = await startGatewayFleet({ engine: { models: ['m'], tokens: 16, tokenDelayMs: 5 }, gateway: { admission: { maxEmbeddingInputs: 2048 } } });
  ({ dir, engine, gateway } = fleet);
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

describe('the gateway admits instead of shedding', () => {
  it('an embeddings flood from one client leaves 10 concurrent chat requests from others all answered', async () => {
    const inputs = Array.from({ length: 2048 }, (_, i) => `input number ${i}`);
    const stopFlood = new AbortController();
    const floodStatuses: number[] = [];
    let firstFloodAnswerAt: number | undefined;
    const flood = (async () => {
      // Sequential requests, as the impatient client sent them; bounded in count, and the one
      // in progress is abandoned once the chats are done.
      for (let i = 0; i < 4 && !stopFlood.signal.aborted; i++) {
        const response = await fetch(`${gateway.url}/v1/embeddings`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-tenant-id': 'flood' },
          body: JSON.stringify({ model: 'm', input: inputs }),
          signal: stopFlood.signal,
        });
        floodStatuses.push(response.status);
        firstFloodAnswerAt ??= performance.now();
        await response.arrayBuffer();
      }
    })().catch((error: unknown) => {
      if (!stopFlood.signal.aborted) throw error;
    });
    // Let the flood fill the fleet first.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const chats = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const response = await post(
          '/v1/chat/completions',
          { model: 'm', messages: [{ role: 'user', content: `hello ${i}` }], max_tokens: 8 },
          { 'x-tenant-id': `chat-${i}` },
        );
        return { status: response.status, body: (await response.json()) as { choices?: unknown[] } };
      }),
    );
    const chatsDoneAt = performance.now();
    // The flood goes on until its first request has been answered.
    await waitUntil(() => firstFloodAnswerAt !== undefined, "the flood's first request to be answered", 60_000, 50);
    stopFlood.abort();
    await flood;
    expect(chats.map((chat) => chat.status)).toEqual(Array(10).fill(200));
    for (const chat of chats) expect(chat.body.choices).toHaveLength(1);
    // The chats did not wait behind the flood's 2,048 parts, and the flood was served too
    // (queued, not shed: no 429 for anyone).
    expect(chatsDoneAt).toBeLessThan(firstFloodAnswerAt!);
    expect(floodStatuses.length).toBeGreaterThan(0);
    expect(floodStatuses).toEqual(Array(floodStatuses.length).fill(200));
  }, 120_000);

  it('a failing part of an embeddings request cancels its siblings', async () => {
    // Parts of the flood abandoned by the test before may still reach the engine: wait them out.
    let seen = -1;
    const quiet = (): boolean => {
      const settled = seen === engine.requests.length;
      seen = engine.requests.length;
      return settled;
    };
    await waitUntil(quiet, 'no new request at the engine for 300 ms', 20_000, 300);
    const before = engine.requests.length;
    engine.failNext(400, 'this input is not acceptable');
    const response = await post('/v1/embeddings', { model: 'm', input: Array.from({ length: 2048 }, (_, i) => `part ${i}`) }, { 'x-tenant-id': 'failing' });
    expect(response.status).toBe(400);
    // At most the parts already running or admitted when the first failed were sent.
    expect(engine.requests.length - before).toBeLessThan(64);
  }, 30_000);

  it('refuses a bad x-priority or x-tenant-id header with a 400 naming it', async () => {
    const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
    const badPriority = await post('/v1/chat/completions', chat, { 'x-priority': 'urgent' });
    expect(badPriority.status).toBe(400);
    expect(((await badPriority.json()) as { error: { message: string } }).error.message).toMatch(
      /x-priority header must be low, normal, high or an integer from 0 to 9, got "urgent"/,
    );
    const badTenant = await post('/v1/chat/completions', chat, { 'x-tenant-id': 'a b' });
    expect(badTenant.status).toBe(400);
    expect(await badTenant.text()).toMatch(/x-tenant-id header/);
  });
});

describe('the per-request cap on embeddings inputs', () => {
  it('answers 400 naming the field and the cap', async () => {
    const small = await startGateway({ port: 0, client: { registry: `file://${dir.dir}`, config: false, log: false }, admission: { maxEmbeddingInputs: 100 } });
    try {
      const response = await fetch(`${small.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', input: Array(101).fill('x') }),
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { message: string; param: string } };
      expect(body.error.param).toBe('input');
      expect(body.error.message).toContain('at most 100 per request (admission.maxEmbeddingInputs)');
    } finally {
      await small.close();
    }
  });
});
