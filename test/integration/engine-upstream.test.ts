import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startEngineWorker } from 'shuttle-rpc/engine';
import { startFakeEngine } from 'shuttle-rpc/testing';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * The engine adapter's HTTP side against engines written here on real loopback sockets: it keeps
 * one connection to the engine across requests, and an engine that streams an event without
 * end costs a bounded amount of memory and gets its request closed.
 */
interface Engine {
  url: string;
  connections: number;
  closedEarly: number;
  close(): Promise<void>;
}

async function startEngine(answer: (response: http.ServerResponse) => void): Promise<Engine> {
  const engine = { url: '', connections: 0, closedEarly: 0, close: async () => {} };
  const server = http.createServer((request, response) => {
    request.resume();
    request.once('end', () => answer(response));
    response.once('close', () => {
      if (!response.writableFinished) engine.closedEarly++;
    });
  });
  server.on('connection', () => engine.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  engine.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  engine.close = () => new Promise<void>((resolve) => server.close(() => resolve())).then(() => server.closeAllConnections());
  return engine;
}

const tokens = (response: http.ServerResponse): void => {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const text of ['a', 'b', 'c']) response.write(`data: ${JSON.stringify({ choices: [{ text }] })}\n\n`);
  response.end('data: [DONE]\n\n');
};

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** What reading `stream` to its end fails with (undefined when it does not fail). */
async function failureOf(stream: AsyncIterable<unknown>): Promise<unknown> {
  try {
    for await (const _ of stream) {
      // read on
    }
  } catch (error) {
    return error;
  }
  return undefined;
}

/** A worker in front of `engine`, and a proxy calling it. */
async function workerFor(engine: Pick<Engine, 'url'>, maxBufferedAnswerBytes?: number) {
  const worker = await startEngineWorker({
    url: engine.url,
    name: 'w',
    models: ['m'],
    metricsUrl: false,
    // The health checks would open a connection of their own, and this engine answers any path.
    healthUrl: false,
    server: { host: '127.0.0.1', port: 0, log: false },
    ...(maxBufferedAnswerBytes === undefined ? {} : { maxBufferedAnswerBytes }),
  });
  cleanup.push(() => worker.close());
  const client = await createClient({ registry: `shuttle://127.0.0.1:${worker.server.port}`, config: false });
  cleanup.push(() => client.close());
  return { worker, llm: client.proxy<LlmApi>('inference.LLM') };
}

describe('the engine adapter over HTTP', () => {
  it('sends one request after another over one kept-alive connection', async () => {
    const engine = await startEngine(tokens);
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    for (let i = 0; i < 5; i++) {
      const texts: string[] = [];
      for await (const token of llm.generate({ prompt: `p${i}` })) texts.push(String(token.text));
      expect(texts).toEqual(['a', 'b', 'c']);
    }
    expect(engine.connections).toBe(1);
    expect(engine.closedEarly).toBe(0);
  });

  it('passes a token with a lone surrogate (no UTF-8 form) on as U+FFFD instead of failing the generation', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      // JSON escapes can name half of a surrogate pair; an engine written in UTF-16 might send one.
      for (const text of ['a', '\\ud83d', 'x\\ude00y', '\\ud83d\\ude00']) response.write(`data: {"choices":[{"text":"${text}"}]}\n\n`);
      response.end('data: [DONE]\n\n');
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const texts: string[] = [];
    for await (const token of llm.generate({ prompt: 'p' })) texts.push(String(token.text));
    // A first half is held for the next chunk, which here does not complete it.
    expect(texts).toEqual(['a', '\ufffdx\ufffdy', '\u{1f600}']);
  });

  it('fails the call with INTERNAL when the engine streams one event without end, and closes the engine request', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const piece = `data: ${'x'.repeat(64 * 1024)}\n`;
      let sent = 0;
      // At most 8 MiB, as fast as the worker reads; the worker gives up at 1 MiB.
      const more = (): void => {
        while (sent < 128 && !response.destroyed) {
          sent++;
          if (!response.write(piece)) return void response.once('drain', more);
        }
      };
      more();
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const error = await failureOf(llm.generate({ prompt: 'p' }));
    expect(error).toMatchObject({ code: RpcCode.INTERNAL, message: expect.stringContaining('engine sent an SSE event over 1048576 characters') });
    await waitUntil(() => engine.closedEarly === 1, 'the engine saw its request closed', 3000);
  });
});

describe('an engine that does not stream', () => {
  it('answers a streaming request with its whole completion as JSON: one chunk, then the usage', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          model: 'm',
          choices: [{ index: 0, message: { role: 'assistant', content: 'all at once' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 4, completion_tokens: 3 },
        }),
      );
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const call = llm.generate({ messages: [{ role: 'user', content: 'hi' }] });
    const texts: string[] = [];
    for await (const token of call) texts.push(String(token.text));
    expect(texts).toEqual(['all at once']);
    expect(await call.trailer).toMatchObject({ worker: 'w', model: 'm', promptTokens: 4, outputTokens: 3, finishReason: 'stop' });
  });

  it('fails the call with INTERNAL naming the request when that JSON is not an answer', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('null');
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const error = await failureOf(llm.generate({ prompt: 'p' }));
    expect(error).toMatchObject({ code: RpcCode.INTERNAL, message: expect.stringContaining('engine sent null where an answer object belongs') });
  });
});

describe('what an engine makes the worker hold', () => {
  it('fails a call RESOURCE_EXHAUSTED, naming its size and the limit, when the JSON answers being read would pass maxBufferedAnswerBytes; its request is closed and the bytes come back', async () => {
    const MiB = 1024 * 1024;
    // Each answer: `{"pad":"…` of `size` bytes, then held open until `finish` is called.
    const held: Array<() => void> = [];
    let size = 3 * MiB;
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write(`{"pad":"${'x'.repeat(size)}`);
      held.push(() => response.end('","data":[{"embedding":[1,2]}]}'));
    });
    cleanup.push(() => engine.close());
    const { llm, worker } = await workerFor(engine, 4 * MiB);
    const first = llm.embed({ text: 'a' });
    // All of the first answer read and held before the second starts: the budget is first come,
    // first served, so two answers read at once could fail either.
    await waitUntil(() => held.length === 1 && worker.answerBytesHeld >= size, 'the first answer to be held whole');
    const error = await llm.embed({ text: 'b' }).catch((failure: unknown) => failure);
    expect(error).toMatchObject({
      code: RpcCode.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(
        /engine answer to POST \S+\/embeddings needs \d+ bytes held at once, more than is free of the worker's 4194304-byte budget/,
      ),
    });
    await waitUntil(() => engine.closedEarly === 1, 'the engine saw the refused request closed', 3000);
    held[0]!();
    expect(await first).toMatchObject({ values: [1, 2] });
    // What both held is free again: an answer of nearly the whole budget goes through.
    await waitUntil(() => worker.answerBytesHeld === 0, 'every byte given back');
    size = 4 * MiB - 64;
    const third = llm.embed({ text: 'c' });
    await waitUntil(() => held.length === 3, 'the third answer to be under way');
    held[2]!();
    expect(await third).toMatchObject({ values: [1, 2] });
  });

  it('fails the call with INTERNAL after 1024 chunks in a row that carry nothing, and closes the engine request', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(`data: ${JSON.stringify({ choices: [{ text: 'a' }] })}\n\n`);
      const empty = `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: null }] })}\n\n`.repeat(100);
      // Forever, as fast as the worker reads.
      const more = (): void => {
        while (!response.destroyed) if (!response.write(empty)) return void response.once('drain', more);
      };
      more();
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const error = await failureOf(llm.generate({ prompt: 'p' }));
    expect(error).toMatchObject({
      code: RpcCode.INTERNAL,
      message: expect.stringContaining('engine sent 1025 chunks in a row without text, a tool call, a finish_reason or usage (at most 1024)'),
    });
    await waitUntil(() => engine.closedEarly === 1, 'the engine saw its request closed', 3000);
  });

  it('counts reasoning and tool-call chunks as progress: a long run of them is no flood', async () => {
    const engine = await startEngine((response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta: object) => `data: ${JSON.stringify({ choices: [{ index: 0, delta }] })}\n\n`;
      for (let i = 0; i < 3000; i++)
        response.write(chunk(i % 2 === 0 ? { reasoning_content: 'hm' } : { tool_calls: [{ index: 0, function: { arguments: '{' } }] }));
      response.write(chunk({ content: 'done' }));
      response.end(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
    });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const texts: string[] = [];
    for await (const token of llm.generate({ messages: [{ role: 'user', content: 'hi' }] })) texts.push(String(token.text));
    expect(texts).toEqual(['done']);
  });
});

describe('embed requests the adapter passes on', () => {
  it('sends token ids to the engine as they are, and refuses ids that are not token ids, or text and tokens together, before asking the engine', async () => {
    const engine = await startFakeEngine({ models: ['m'] });
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    expect(await llm.embed({ tokens: [42, 7] })).toEqual({ values: [2, 42, 0.5], promptTokens: 2 });
    expect(engine.requests.at(-1)).toMatchObject({ path: '/v1/embeddings', body: { input: [42, 7] } });
    const asked = engine.requests.length;
    for (const [request, words] of [
      [{ tokens: [1, -1] }, 'request.tokens must be a non-empty array of token ids'],
      [{ tokens: [] }, 'request.tokens must be a non-empty array of token ids'],
      [{ text: 'a', tokens: [1] }, 'give request.text or request.tokens, not both'],
      [{}, 'request.text must be a string'],
    ] as const) {
      const error = await rejection(llm.embed(request as never));
      expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
      expect(error.message).toContain(words);
    }
    expect(engine.requests.length).toBe(asked);
  });
});

describe('refusals by the engine, as the worker passes them on', () => {
  const refusing = (status: number, body: string) => (response: http.ServerResponse) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(body);
  };

  it("a request refused as invalid carries the engine's own words in details.engineMessage, at most 500 characters", async () => {
    const words = `temperature must be in [0, 2], got 9 ${'x'.repeat(1000)}`;
    const engine = await startEngine(refusing(400, JSON.stringify({ error: { message: words, type: 'BadRequestError', code: 400 } })));
    cleanup.push(() => engine.close());
    const { llm } = await workerFor(engine);
    const error = (await failureOf(llm.generate({ model: 'm', prompt: 'x' }))) as { code: RpcCode; details?: Record<string, unknown> };
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.details?.['engineMessage']).toBe(words.slice(0, 500));
    // A proxy's page in front of the engine is not the engine's words.
    const proxied = await startEngine(refusing(404, '<html>404 Not Found</html>'));
    cleanup.push(() => proxied.close());
    const second = await workerFor(proxied);
    const notFound = (await failureOf(second.llm.generate({ model: 'm', prompt: 'x' }))) as { code: RpcCode; details?: Record<string, unknown> };
    expect(notFound.code).toBe(RpcCode.NOT_FOUND);
    expect(notFound.details?.['engineMessage']).toBeUndefined();
  });

  it("an engine that refuses the worker's credentials (401, 403) is the worker's fault: UNAVAILABLE, never sent, so another worker may take the call", async () => {
    for (const status of [401, 403]) {
      const engine = await startEngine(refusing(status, JSON.stringify({ error: { message: 'invalid api key', type: 'authentication_error' } })));
      cleanup.push(() => engine.close());
      const { llm } = await workerFor(engine);
      const error = (await failureOf(llm.generate({ model: 'm', prompt: 'x' }))) as { code: RpcCode; message: string; details?: Record<string, unknown> };
      expect(error.code).toBe(RpcCode.UNAVAILABLE);
      expect(error.details?.['neverSent']).toBe(true);
      expect(error.message).toContain(`engine answered ${status}`);
    }
  });
});
