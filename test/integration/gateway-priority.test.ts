import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Priority from the HTTP header to the engine's batch, every piece real: a simulated GPU worker
 * process with 2 batch slots scheduling by priority, and the gateway over the file registry with
 * `overcommit` for high priority. Two long low-priority streams fill the batch and a third waits
 * in the gateway's queue; a high-priority request must get past both: the queue lets it through
 * to the full worker, and the engine runs it at once by preempting a low stream, which then
 * finishes all its tokens.
 */
let dir: { dir: string; remove(): Promise<void> };
let worker: Child;
let gateway: Gateway;

beforeAll(async () => {
  dir = await tempDir();
  const registry = `file://${dir.dir}`;
  worker = await startFixture(
    '../../examples/inference/worker',
    { SHUTTLE_REGISTRY: registry },
    10_000,
    [],
    ['--name', 'prio', '--slots', '2', '--scheduling', 'priority'],
  );
  gateway = await startGateway({ port: 0, client: { registry, config: false, log: false }, admission: { overcommit: { priority: 5, slots: 2 } }, log: false });
  // The gateway admits by the workers' slots: wait until it has seen the worker. Its client
  // reads the registry on the first request or on ready(); before that providers() is empty.
  await gateway.client.ready();
  await waitUntil(() => gateway.client.providers().length > 0, 'the gateway to see the worker', 5000, 50);
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  await worker?.stop();
  await dir?.remove();
});

/** A streaming chat: resolves `started` at its first token and `done` with its token count. */
function stream(priority: string, tenant: string, maxTokens: number): { started: Promise<void>; done: Promise<number>; finished: () => boolean } {
  let finished = false;
  let start!: () => void;
  const started = new Promise<void>((resolve) => (start = resolve));
  const done = (async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-priority': priority, 'x-tenant-id': tenant },
      body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: `a long ${priority} story` }], max_tokens: maxTokens, stream: true }),
    });
    expect(response.status).toBe(200);
    let tokens = 0;
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let at = text.indexOf('\n\n'); at >= 0; at = text.indexOf('\n\n')) {
        const event = text.slice(0, at);
        text = text.slice(at + 2);
        if (event.includes('"content":"') && !event.includes('"content":""')) {
          if (tokens++ === 0) start();
        }
      }
    }
    finished = true;
    return tokens;
  })();
  return { started, done, finished: () => finished };
}

/** Non-streaming chat through `target`'s gateway. */
function ask(target: Gateway, tenant: string, maxTokens: number, signal?: AbortSignal): Promise<Response> {
  return fetch(`${target.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': tenant },
    body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: `from ${tenant}` }], max_tokens: maxTokens }),
    ...(signal === undefined ? {} : { signal }),
  });
}

describe('priority reaches the engine', () => {
  it('a high-priority request overtakes a full batch and the queue; the preempted low stream still finishes', async () => {
    const lows = [stream('low', 'batch', 600), stream('low', 'batch', 600)];
    await Promise.all(lows.map((low) => low.started));
    const queued = stream('low', 'batch', 8);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const sentAt = performance.now();
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-priority': 'high', 'x-tenant-id': 'web' },
      body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'urgent' }], max_tokens: 8 }),
    });
    const answer = (await response.json()) as { usage: { completion_tokens: number } };
    const tookMs = performance.now() - sentAt;
    expect(response.status).toBe(200);
    expect(answer.usage.completion_tokens).toBe(8);
    // Both low streams still run (600 tokens take seconds) and the queued one has not started:
    // without preemption the urgent request would have waited for a low stream to end.
    expect(lows.map((low) => low.finished())).toEqual([false, false]);
    expect(queued.finished()).toBe(false);
    expect(tookMs).toBeLessThan(3000);
    // Preempted, not dropped: every low stream gets all its tokens, then the queued one runs.
    expect(await Promise.all(lows.map((low) => low.done))).toEqual([600, 600]);
    expect(await queued.done).toBe(8);
  }, 60_000);
});

describe('refusals by the queue', () => {
  it('a 429 from a full queue says the queue is full, with Retry-After; from a tenant at its share, that tenant', async () => {
    // A second gateway over the same worker, with room for one waiting call per tenant, two in all.
    const small = await startGateway({
      port: 0,
      client: { registry: `file://${dir.dir}`, config: false, log: false },
      admission: { maxQueued: 2, tenantDefaults: { maxQueued: 1 } },
      log: false,
    });
    const stop = new AbortController();
    try {
      await small.client.ready();
      await waitUntil(() => small.client.providers().length > 0, 'the second gateway to see the worker', 5000, 50);
      const pending = [ask(small, 'a', 1000, stop.signal), ask(small, 'a', 1000, stop.signal)].map((answer) => answer.catch(() => undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      pending.push(ask(small, 'a', 8, stop.signal).catch(() => undefined));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const share = await ask(small, 'a', 8);
      expect(share.status).toBe(429);
      expect(Number(share.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const shareError = ((await share.json()) as { error: { message: string; type: string } }).error;
      expect(shareError.message).toMatch(
        /^the gateway's admission queue turned the request away before any worker saw it: tenant "a" has 1 calls waiting, its maxQueued; retry in \d+ ms$/,
      );
      expect(shareError.type).toBe('rate_limit_error');
      pending.push(ask(small, 'b', 8, stop.signal).catch(() => undefined));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const full = await ask(small, 'c', 8);
      expect(full.status).toBe(429);
      expect(Number(full.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const fullError = ((await full.json()) as { error: { message: string } }).error.message;
      expect(fullError).toMatch(/the admission queue is full \(2 calls waiting, maxQueued 2\); retry in \d+ ms$/);
      expect(fullError).not.toMatch(/saturated/);
    } finally {
      stop.abort();
      await small.close();
    }
  }, 30_000);
});
