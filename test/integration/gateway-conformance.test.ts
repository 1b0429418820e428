import OpenAI from 'openai';
import { RpcMethod, RpcService } from 'shuttle-rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import { realClock, SimEngine, startTestPair, type FakeEngine } from 'shuttle-rpc/testing';
import { LlmWorker } from '../../examples/inference/llm.js';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';

/*
 * The gateway's answers as OpenAI's clients read them, every piece real on loopback (a fake
 * engine, an engine worker, the gateway): the SSE chunks byte for byte where OpenAI's API
 * reference fixes them, and the official openai client's view of the same answers.
 */
let fleet: GatewayFleet | undefined;
let gateway: Gateway;
let engine: FakeEngine;
let openai: OpenAI;

beforeAll(async () => {
  fleet = await startGatewayFleet({ engine: { models: ['m', 'org/m-1'], tokens: 4, tokenDelayMs: 1 }, gateway: { log: false } });
  ({ gateway, engine } = fleet);
  openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'not-checked', maxRetries: 0 });
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

/** The `data:` payloads of a streaming answer, `[DONE]` kept as the string. */
async function events(path: string, body: Record<string, unknown>): Promise<unknown[]> {
  const response = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await response.text();
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  return text
    .split('\n\n')
    .filter((event) => event !== '')
    .map((event) => {
      expect(event.startsWith('data: ')).toBe(true);
      const data = event.slice('data: '.length);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

describe('streaming answers in the shape of OpenAI', () => {
  it('with include_usage every chunk has usage null but the last, which has the usage and no choices; without it no chunk has usage', async () => {
    for (const [path, prompt] of [
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }],
      ['/v1/completions', { prompt: 'hi' }],
    ] as const) {
      const asked = await events(path, { model: 'm', ...prompt, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
      expect(asked.at(-1)).toBe('[DONE]');
      const chunks = asked.slice(0, -1) as Array<Record<string, unknown>>;
      const last = chunks.at(-1)!;
      expect(last).toMatchObject({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } });
      for (const chunk of chunks.slice(0, -1)) {
        expect(Object.hasOwn(chunk, 'usage'), JSON.stringify(chunk)).toBe(true);
        expect(chunk.usage).toBeNull();
      }
      expect(chunks.at(-2)).toMatchObject({ choices: [{ index: 0, finish_reason: 'length' }] });

      const plain = (await events(path, { model: 'm', ...prompt, max_tokens: 3, stream: true })).slice(0, -1) as Array<Record<string, unknown>>;
      for (const chunk of plain) expect(Object.hasOwn(chunk, 'usage'), JSON.stringify(chunk)).toBe(false);
    }
  });
});

describe('models', () => {
  it('models.retrieve gives a served model, its id slashes and all (escaped by the client or not), and 404 model_not_found for others', async () => {
    expect(await openai.models.retrieve('m')).toMatchObject({ id: 'm', object: 'model', created: 0, owned_by: 'shuttle' });
    expect(await openai.models.retrieve('org/m-1')).toMatchObject({ id: 'org/m-1', object: 'model' });
    const raw = await fetch(`${gateway.url}/v1/models/org/m-1`);
    expect(raw.status).toBe(200);
    expect(await raw.json()).toEqual({ id: 'org/m-1', object: 'model', created: 0, owned_by: 'shuttle' });
    const missing = await openai.models.retrieve('nope').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ status: 404, param: 'model', code: 'model_not_found' });
    expect((missing as Error).message).toMatch(/the model "nope" does not exist here; served: m, org\/m-1/);
    const long = await fetch(`${gateway.url}/v1/models/${'x'.repeat(5000)}`);
    expect(long.status).toBe(404);
    expect((await long.text()).length).toBeLessThan(400);
  });
});

describe('chat messages the workers cannot carry, through the openai client', () => {
  it('a tool message is refused 400 naming its role, and never reaches the engine', async () => {
    const before = engine.requests.length;
    const refused = await openai.chat.completions
      .create({
        model: 'm',
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'tool', content: 'sunny', tool_call_id: 'call_1' },
        ],
      })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ status: 400, param: 'messages[1].role', code: 'unsupported_parameter', type: 'invalid_request_error' });
    expect(engine.requests.length).toBe(before);
  });
});

describe('characters split across tokens', () => {
  it('an emoji whose two UTF-16 halves come in two engine chunks reaches the client whole, streaming and not', async () => {
    const split = await startGatewayFleet({
      engine: { models: ['m'], texts: ['a\ud83d', '\ude00b', '\ud83d', '\ude80', 'é', 'c\ud83d'] },
      gateway: { log: false },
    });
    try {
      const client = new OpenAI({ baseURL: `${split.gateway.url}/v1`, apiKey: 'not-checked', maxRetries: 0 });
      const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true });
      const deltas: string[] = [];
      for await (const chunk of stream) {
        const content = chunk.choices[0]?.delta.content;
        if (content) deltas.push(content);
      }
      // The half that never found its second half is what a UTF-8 engine would have sent.
      expect(deltas.join('')).toBe('a😀b🚀éc\ufffd');
      // Each delta is well-formed on its own: it survives a UTF-8 round trip, as a Python client decodes it.
      for (const delta of deltas) expect(Buffer.from(delta).toString('utf8')).toBe(delta);
      const whole = await client.completions.create({ model: 'm', prompt: 'hi' });
      expect(whole.choices[0]!.text).toBe('a😀b🚀éc\ufffd');
    } finally {
      await split.close();
    }
  });
});

describe('the openai client retries what the gateway says to retry', () => {
  it('a 429 and a 503 with Retry-After are retried by the client after the delay, and the retry is served', async () => {
    const patient = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'not-checked', maxRetries: 2 });
    for (const status of [429, 503]) {
      // The engine turns the first request away (never run): the worker's refusal reaches the
      // client as the same status with Retry-After, and the client's retry finds a free engine.
      engine.failNext(status, 'busy', 1, { 'retry-after': '1' });
      const before = engine.requests.length;
      const started = performance.now();
      const { data, response } = await patient.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: `retry ${status}` }] }).withResponse();
      expect(data.choices[0]!.message.content).toBe('tok0 tok1 tok2 tok3 ');
      expect(performance.now() - started).toBeGreaterThanOrEqual(900);
      expect(engine.requests.length - before).toBe(2);
      expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe('browser apps (CORS)', () => {
  const preflight = (url: string, origin: string): Promise<Response> =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    });
  const chat = (url: string, headers: Record<string, string>, stream = false): Promise<Response> =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream }),
    });

  it('off by default: a preflight gets no permission and answers carry no Access-Control header', async () => {
    const refused = await preflight(gateway.url, 'http://app.test');
    expect(refused.status).toBe(405);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    const answer = await chat(gateway.url, { origin: 'http://app.test' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('with cors.origins: a preflight from a named origin is answered before the API key is asked for; every answer to it, streams and errors too, is readable by the page', async () => {
    const cors = await startGateway({
      port: 0,
      client: { registry: `file://${fleet!.dir.dir}`, config: false, log: false },
      log: false,
      apiKey: 'sk-test',
      cors: { origins: ['http://app.test'] },
    });
    try {
      const allowed = await preflight(cors.url, 'http://app.test');
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe('http://app.test');
      expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
      expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type, x-stainless-os');
      expect(allowed.headers.get('vary')).toMatch(/origin/i);

      const other = await preflight(cors.url, 'http://evil.test');
      expect(other.status).toBe(403);
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      expect(((await other.json()) as { error: { code: string } }).error.code).toBe('origin_not_allowed');

      for (const stream of [false, true]) {
        const answer = await chat(cors.url, { origin: 'http://app.test', authorization: 'Bearer sk-test' }, stream);
        expect(answer.status).toBe(200);
        expect(answer.headers.get('access-control-allow-origin')).toBe('http://app.test');
        expect(answer.headers.get('access-control-expose-headers')).toContain('x-request-id');
        await answer.text();
      }
      const noKey = await chat(cors.url, { origin: 'http://app.test' });
      expect(noKey.status).toBe(401);
      expect(noKey.headers.get('access-control-allow-origin')).toBe('http://app.test');
      const elsewhere = await chat(cors.url, { origin: 'http://evil.test', authorization: 'Bearer sk-test' });
      expect(elsewhere.headers.get('access-control-allow-origin')).toBeNull();
      await elsewhere.text();
    } finally {
      await cors.close();
    }
  });
});

describe('a prompt too long for the model', () => {
  const VLLM = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion).";
  it("is 400 context_length_exceeded naming messages or prompt, streaming or not, in OpenAI's words and without the engine's address", async () => {
    const requests: Array<[string, () => Promise<unknown>]> = [
      ['messages', () => openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'long' }], max_tokens: 1000 })],
      [
        'messages',
        async () => {
          const stream = await openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'long' }], stream: true });
          for await (const _ of stream);
        },
      ],
      ['prompt', () => openai.completions.create({ model: 'm', prompt: 'long' })],
    ];
    for (const [param, create] of requests) {
      engine.failNext(400, VLLM);
      const refused = await create().catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
      expect(refused).toMatchObject({ status: 400, param, code: 'context_length_exceeded', type: 'invalid_request_error' });
      expect((refused as Error).message).toContain("exceed the model's maximum context length of 4096 tokens");
      expect((refused as Error).message).not.toContain('127.0.0.1');
    }
    // Any other refusal by the engine is a plain 400 with the engine's words.
    engine.failNext(400, 'temperature is out of range');
    const other = await openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).catch((error: unknown) => error);
    expect(other).toMatchObject({ status: 400, code: null, param: null });
    expect((other as Error).message).toMatch(/^400 the engine refused the request: temperature is out of range \(request id /);
  });
});

/** A worker that breaks the contract: tokens without a text, embeddings that are no vector. */
@RpcService({ name: 'inference.LLM', version: '1.0.0' })
class CarelessWorker {
  @RpcMethod({ stream: true })
  async *generate(): AsyncGenerator<unknown, unknown> {
    yield { text: 'ok ' };
    yield { text: 5 };
    yield {};
    yield { text: { nested: true } };
    yield 'bare';
    yield { text: 'done' };
    return { worker: 'careless', promptTokens: 1, outputTokens: 6, finishReason: 'tool_calls' };
  }

  @RpcMethod({ idempotent: true })
  async embed(request: { text: string }): Promise<unknown> {
    const answers: Record<string, unknown> = { text: { values: 'abc' }, mixed: { values: [1, 'x', null] }, none: {}, empty: { values: [] } };
    return answers[request.text] ?? { values: [1, 2] };
  }
}

describe('what a worker answers is checked before it reaches the client', () => {
  it('tokens without a text are dropped, streaming and not; a finish reason without tools is no tool_calls; an embedding that is no vector of numbers fails the request 500', async () => {
    const pair = await startTestPair([new CarelessWorker()], { server: { metadata: { model: 'm' } } });
    const careless = await startGateway({ port: 0, client: pair.client, log: false });
    try {
      const client = new OpenAI({ baseURL: `${careless.url}/v1`, apiKey: 'not-checked', maxRetries: 0 });
      const whole = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
      expect(whole.choices[0]!.message.content).toBe('ok done');
      // A finish reason OpenAI's clients would misread (no tools were asked for) counts as none said.
      expect(whole.choices[0]!.finish_reason).toBe('stop');
      const cut = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 6 });
      expect(cut.choices[0]!.finish_reason).toBe('length');
      const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true });
      const deltas: unknown[] = [];
      for await (const chunk of stream) if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content);
      expect(deltas).toEqual(['ok ', 'done']);

      // Left out, the client asks for base64 and decodes it.
      for (const encoding_format of [undefined, 'float'] as const) {
        for (const input of ['text', 'mixed', 'none', 'empty']) {
          const failed = await client.embeddings
            .create({ model: 'm', input: ['fine', input], ...(encoding_format && { encoding_format }) })
            .catch((error: unknown) => error);
          expect(failed, input).toBeInstanceOf(OpenAI.InternalServerError);
          expect((failed as Error).message).toMatch(/internal error \(request id [0-9a-f-]{36}\)/);
        }
        const fine = await client.embeddings.create({ model: 'm', input: 'fine', ...(encoding_format && { encoding_format }) });
        expect(fine.data[0]!.embedding).toEqual([1, 2]);
      }
    } finally {
      await careless.close();
      await pair.close();
    }
  });
});

describe('over a simulated worker', () => {
  it('a generation the worker cut at its own default limit finishes with length, as one cut at max_tokens does', async () => {
    const pair = await startTestPair([new LlmWorker(new SimEngine({ slots: 4, kvCapacityTokens: 100_000 }, realClock), 'sim')], {
      server: { metadata: { model: 'llama-3-8b' } },
    });
    const sim = await startGateway({ port: 0, client: pair.client, log: false });
    try {
      const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'not-checked', maxRetries: 0 });
      const unbounded = await client.chat.completions.create({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'tell me' }] });
      expect(unbounded.usage?.completion_tokens).toBe(32);
      expect(unbounded.choices[0]!.finish_reason).toBe('length');
      const bounded = await client.completions.create({ model: 'llama-3-8b', prompt: 'tell me', max_tokens: 3 });
      expect(bounded.choices[0]!.finish_reason).toBe('length');
    } finally {
      await sim.close();
      await pair.close();
    }
  });
});
