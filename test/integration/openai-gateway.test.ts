import net from 'node:net';
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type RpcClient, type RpcError } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startEngineWorker } from 'shuttle-rpc/engine';
import { startGateway } from 'shuttle-rpc/gateway';
import { startFakeEngine, type FakeEngine } from 'shuttle-rpc/testing';
import { startFixture, type Child } from '../helpers/process.js';
import { startGatewayFleet } from '../helpers/gateway-fleet.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The OpenAI bridges end to end, every piece a real process on loopback: two fake
 * OpenAI-compatible engines (HTTP servers in this process, streaming tokens and serving
 * Prometheus metrics), a `shuttle worker --engine openai` process in front of each, a
 * `shuttle gateway` process over the file registry, and the official `openai` npm client.
 */
const CLI = '../../../dist/cli/main';
let registry: { dir: string; remove(): Promise<void> };
let env: Record<string, string>;
let engine: FakeEngine;
let other: FakeEngine;
const children: Child[] = [];
let gateway: Child;
let workerA: Child;
let openai: OpenAI;

async function cli(args: string[]): Promise<Child> {
  const child = await startFixture(CLI, env, 15_000, [], args);
  children.push(child);
  return child;
}

beforeAll(async () => {
  registry = await tempDir();
  env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
  engine = await startFakeEngine({ models: ['fake-model'], tokens: 400, tokenDelayMs: 5 });
  other = await startFakeEngine({ models: ['other-model'], tokens: 400, tokenDelayMs: 5, style: 'sglang' });
  workerA = await cli([
    'worker',
    '--engine',
    'openai',
    '--url',
    engine.url,
    '--name',
    'engine-a',
    '--metrics-interval',
    '100',
    '--admin-port',
    '0',
    '--priority',
    'vllm',
  ]);
  await cli(['worker', '--engine', 'openai', '--url', other.url, '--name', 'engine-b', '--metrics-interval', '100', '--priority', 'sglang']);
  gateway = await cli(['gateway', '--port', '0', '--admin-port', '0']);
  openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'not-checked', maxRetries: 0 });
}, 60_000);

afterAll(async () => {
  for (const child of children.reverse()) await child.stop();
  await engine?.close();
  await other?.close();
  await registry?.remove();
});

describe('gateway and engine adapter, with the official openai client', () => {
  it('lists the models the workers serve', async () => {
    const models = await openai.models.list();
    expect(models.data.map((model) => model.id)).toEqual(['fake-model', 'other-model']);
  });

  it('answers a chat completion whole, from the engine that serves the model', async () => {
    const before = other.requests.length;
    const answer = await openai.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4 });
    expect(answer.object).toBe('chat.completion');
    expect(answer.choices[0]!.message).toEqual({ role: 'assistant', content: 'tok0 tok1 tok2 tok3 ' });
    expect(answer.choices[0]!.finish_reason).toBe('length');
    expect(answer.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
    const sent = engine.requests.at(-1)!;
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.body).toMatchObject({ model: 'fake-model', messages: [{ role: 'user', content: 'hello' }], max_tokens: 4, stream: true });
    expect(other.requests.length).toBe(before);
  });

  it('streams a chat completion as SSE chunks, with usage when asked', async () => {
    const stream = await openai.chat.completions.create({
      model: 'other-model',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      expect(chunk.object).toBe('chat.completion.chunk');
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 ');
    expect(chunks).toBeGreaterThanOrEqual(8); // role chunk, 6 tokens, finish, usage
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 6 });
    expect(other.requests.at(-1)!.body).toMatchObject({ model: 'other-model', stream: true });
  });

  it('serves text completions, streaming and not', async () => {
    const whole = await openai.completions.create({ model: 'fake-model', prompt: 'once upon', max_tokens: 3, temperature: 0.5 });
    expect(whole.object).toBe('text_completion');
    expect(whole.choices[0]!.text).toBe('tok0 tok1 tok2 ');
    expect(engine.requests.at(-1)).toMatchObject({ path: '/v1/completions', body: { prompt: 'once upon', max_tokens: 3, temperature: 0.5 } });

    const stream = await openai.completions.create({ model: 'fake-model', prompt: 'once upon', max_tokens: 5, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe('tok0 tok1 tok2 tok3 tok4 ');
  });

  it('embeds every input (the client asks for base64; float on request)', async () => {
    const answer = await openai.embeddings.create({ model: 'fake-model', input: ['abc', 'hello'] });
    expect(answer.data.map((entry) => entry.embedding)).toEqual([
      [3, 97, 0.5],
      [5, 104, 0.5],
    ]);
    const floats = await openai.embeddings.create({ model: 'fake-model', input: 'xy', encoding_format: 'float' });
    expect(floats.data[0]!.embedding).toEqual([2, 120, 0.5]);
    expect(floats.usage.prompt_tokens).toBe(1);
  });

  it('embeds token-id inputs as the engine takes them (what LangChain sends by default), one array or several', async () => {
    const one = await openai.embeddings.create({ model: 'fake-model', input: [101, 7, 9], encoding_format: 'float' });
    expect(one.data.map((entry) => entry.embedding)).toEqual([[3, 101, 0.5]]);
    expect(one.usage.prompt_tokens).toBe(3);
    expect(engine.requests.at(-1)).toMatchObject({ path: '/v1/embeddings', body: { input: [101, 7, 9] } });
    const several = await openai.embeddings.create({ model: 'fake-model', input: [[5], [6, 6]], encoding_format: 'float' });
    expect(several.data.map((entry) => entry.embedding)).toEqual([
      [1, 5, 0.5],
      [2, 6, 0.5],
    ]);
    expect(several.usage.prompt_tokens).toBe(3);
  });

  it("an engine that dies mid-answer ends the stream with an error event saying after how many tokens, nothing of the engine's", async () => {
    engine.breakNext(9);
    const { data: stream, response } = await openai.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'crash' }], max_tokens: 20, stream: true })
      .withResponse();
    let text = '';
    const failure = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().catch((error: Error) => error);
    expect(text).toBe(Array.from({ length: 9 }, (_, i) => `tok${i} `).join(''));
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect((failure as Error).message).toBe(`the stream broke after 9 tokens; the answer is incomplete (request id ${requestId})`);
  });

  it("sends the request's x-priority to the engine as `priority`, in vLLM's or SGLang's terms", async () => {
    const ask = async (model: string, priority?: string): Promise<void> => {
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(priority === undefined ? {} : { 'x-priority': priority }) },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: `priority ${priority}` }], max_tokens: 2 }),
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    };
    const sentPriorities = async (target: FakeEngine, model: string): Promise<unknown[]> => {
      const seen: unknown[] = [];
      for (const priority of ['high', 'low', undefined, '9']) {
        await ask(model, priority);
        seen.push((target.requests.at(-1)!.body as { priority?: unknown }).priority);
      }
      return seen;
    };
    // vLLM: lower runs first, normal at its default 0.
    expect(await sentPriorities(engine, 'fake-model')).toEqual([-4, 1, 0, -8]);
    // SGLang: higher runs first, as shuttle numbers them.
    expect(await sentPriorities(other, 'other-model')).toEqual([5, 0, 1, 9]);
  });

  it('chat roles and message shapes are checked as OpenAI checks them', async () => {
    const wizard = await openai.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'wizard', content: 'x' } as never] })
      .catch((error: unknown) => error);
    expect(wizard).toBeInstanceOf(OpenAI.BadRequestError);
    expect(wizard).toMatchObject({ status: 400, param: 'messages[0].role', code: 'invalid_value' });
    expect((wizard as Error).message).toMatch(
      /Invalid value: 'wizard'\. Supported values are: 'developer', 'system', 'user', 'assistant', 'tool', and 'function'\./,
    );
    const noContent = await openai.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user' } as never] }).catch((error: unknown) => error);
    expect(noContent).toMatchObject({ status: 400, param: 'messages[0].content', code: 'missing_required_parameter' });
    expect(engine.requests.some((request) => JSON.stringify(request.body).includes('wizard'))).toBe(false);
  });

  it('--admin-port serves Prometheus metrics of the gateway and the worker', async () => {
    await openai.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'count me' }], max_tokens: 2 });
    await openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch(() => undefined);
    // Refused by Node's HTTP parser before any route or hook: counted too (path "other").
    const { hostname, port } = new URL(gateway.url);
    const refused = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () => socket.end('GET /v1/models HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n'));
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });
    expect(refused).toMatch(/^HTTP\/1\.1 400 /);
    const gatewayMetrics = await (await fetch(`${String(gateway.announced.admin)}/metrics`)).text();
    expect(gatewayMetrics).toMatch(/shuttle_gateway_requests_total\{path="other",status="400"\} [1-9]/);
    expect(gatewayMetrics).toMatch(/shuttle_gateway_requests_total\{path="\/v1\/chat\/completions",status="200"\} [1-9]/);
    expect(gatewayMetrics).toMatch(/shuttle_gateway_requests_total\{path="\/v1\/chat\/completions",status="404"\} [1-9]/);
    expect(gatewayMetrics).toMatch(/shuttle_calls_total\{side="consumer",service="inference\.LLM",method="generate",code="OK"\} [1-9]/);
    const workerMetrics = await (await fetch(`${String(workerA.announced.admin)}/metrics`)).text();
    expect(workerMetrics).toMatch(/shuttle_calls_total\{side="provider",service="inference\.LLM",method="generate",code="OK"\} [1-9]/);
  });

  it('a client abort mid-stream closes the engine request', async () => {
    const abortedBefore = engine.aborted;
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: 'fake-model', messages: [{ role: 'user', content: 'a long story' }], stream: true },
      { signal: controller.signal },
    );
    let tokens = 0;
    // The client ends the iteration quietly or with an abort error, depending on timing.
    await (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta.content) tokens++;
        if (tokens === 3) controller.abort();
      }
    })().catch((error: Error) => expect(error.name).toMatch(/Abort/));
    expect(tokens).toBe(3);
    // The gateway's worker call is cancelled, the worker closes its engine request.
    await waitUntil(() => engine.aborted === abortedBefore + 1 && engine.open === 0, 'the engine saw its stream closed', 3000);
    expect(engine.completed).toBeGreaterThan(0);
  });

  it("a shuttle caller's deadline closes the engine request too", async () => {
    const client: RpcClient = await createClient({ registry: env.SHUTTLE_REGISTRY, config: false });
    try {
      // Straight to engine-a's worker (the model-aware routing is the gateway's).
      const llm = client.proxy<LlmApi>('inference.LLM', { url: workerA.url });
      const abortedBefore = engine.aborted;
      const started = Date.now();
      const error = await (async () => {
        // 400 tokens at 5 ms would take 2 s; the deadline is 300 ms.
        for await (const _ of llm.generate({ model: 'fake-model', prompt: 'slow' }, { timeoutMs: 300 })) {
          // keep reading
        }
      })().catch((failure: RpcError) => failure);
      expect(error).toMatchObject({ code: RpcCode.DEADLINE_EXCEEDED });
      expect(Date.now() - started).toBeLessThan(1500);
      await waitUntil(() => engine.aborted === abortedBefore + 1, 'the engine saw the request closed at the deadline', 2000);
    } finally {
      await client.close();
    }
  });

  it("errors come in OpenAI's shape with the right status", async () => {
    const unknown = await openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    expect((unknown as Error).message).toMatch(/"nope" does not exist here; served: fake-model, other-model/);

    const bad = await openai.chat.completions.create({ model: 'fake-model', messages: [] }).catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');

    const range = await openai.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'x' }], temperature: 9 })
      .catch((error: unknown) => error);
    expect((range as Error).message).toMatch(/temperature must be a number from 0 to 2, got 9/);

    // The engine's words about what is wrong with the request reach the client (they are
    // written for API clients); the worker's message, which names the engine's address, does not.
    engine.failNext(400, 'prompt is too long for this model');
    const upstream = await openai.completions.create({ model: 'fake-model', prompt: 'x' }).catch((error: unknown) => error);
    expect(upstream).toBeInstanceOf(OpenAI.BadRequestError);
    expect((upstream as Error).message).toMatch(/^400 the engine refused the request: prompt is too long for this model \(request id [0-9a-f-]{36}\)$/);
    expect((upstream as Error).message).not.toContain('127.0.0.1');
    expect((upstream as InstanceType<typeof OpenAI.BadRequestError>).headers.get('x-request-id')).toBe(
      /request id ([0-9a-f-]{36})/.exec((upstream as Error).message)![1],
    );

    const malformed = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { type: string; message: string } }).error).toMatchObject({
      type: 'invalid_request_error',
      message: expect.stringMatching(/^the request body is not valid JSON/),
    });
    const polluting = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"fake-model","__proto__":{"polluted":true},"messages":[]}',
    });
    expect(polluting.status).toBe(400);
    expect(((await polluting.json()) as { error: { message: string } }).error.message).toMatch(/__proto__/);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    const wrongType = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<hello/>' });
    expect(wrongType.status).toBe(415);
    expect(((await wrongType.json()) as { error: { type: string; message: string } }).error.message).toMatch(/application\/xml/);
    const missing = await fetch(`${gateway.url}/v1/nothing`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { message: string } }).error.message).toMatch(/no route GET \/v1\/nothing/);
  });

  it("publishes the engine's model list, capacity and live load from its metrics", async () => {
    const client: RpcClient = await createClient({ registry: env.SHUTTLE_REGISTRY, config: false });
    try {
      client.proxy('inference.LLM');
      await client.ready();
      const byName = (name: string) => client.providers().find((provider) => provider.metadata.name === name);
      expect(byName('engine-a')?.metadata).toMatchObject({ engine: 'openai', models: ['fake-model'], slots: 256, kvCapacityTokens: 16_000 });
      engine.metrics.waiting = 3;
      engine.metrics.kvUsage = 0.5;
      const stream = openai.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'long' }], stream: true, max_tokens: 300 });
      await waitUntil(
        () => byName('engine-a')?.load?.running === 1 && byName('engine-a')?.load?.waiting === 3,
        'the running stream shows in the published load',
        5000,
      );
      expect(byName('engine-a')?.load?.kvUsage).toBe(0.5);
      expect(byName('engine-a')?.load?.tokensPerSecond).toBeGreaterThan(0);
      // SGLang names on the other engine.
      await waitUntil(() => byName('engine-b')?.load?.tokensPerSecond === 123.5, "the SGLang engine's load is read too", 5000);
      for await (const _ of await stream) {
        // drain
      }
    } finally {
      engine.metrics.waiting = 0;
      await client.close();
    }
  });
});

describe('a saturated fleet', () => {
  it('spreads streams over two workers up to their slots, queues the next request and starts it when a slot frees', async () => {
    const dir = await tempDir();
    const engines = [
      await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 20 }),
      await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 20 }),
    ];
    const open = (): number => engines[0]!.open + engines[1]!.open;
    const own: Child[] = [];
    try {
      const saturatedEnv = { SHUTTLE_REGISTRY: `file://${dir.dir}` };
      // --slots 2: the gateway admits two calls per worker and queues the rest.
      for (const engine of engines)
        own.push(await startFixture(CLI, saturatedEnv, 15_000, [], ['worker', '--url', engine.url, '--slots', '2', '--metrics-url', 'none']));
      const front = await startFixture(CLI, saturatedEnv, 15_000, [], ['gateway', '--port', '0']);
      own.push(front);
      const client = new OpenAI({ baseURL: `${front.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const running = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: `conversation ${i}` }], stream: true }),
        ),
      );
      await waitUntil(() => open() === 4, 'four streams running', 5000);
      expect([engines[0]!.open, engines[1]!.open]).toEqual([2, 2]);
      const queued = fetch(`${front.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant-id': 'late' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'one more' }], stream: true }),
      });
      let answered = false;
      void queued.then(() => (answered = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(answered).toBe(false);
      expect(open()).toBe(4);
      running[0]!.controller.abort();
      const response = await queued;
      expect(response.status).toBe(200);
      await waitUntil(() => open() === 4, 'the queued stream running in the freed slot', 5000);
      for (const stream of running) stream.controller.abort();
      await response.body?.cancel();
      await waitUntil(() => open() === 0, 'the aborted streams closed at the engines', 5000);
    } finally {
      for (const child of own.reverse()) await child.stop();
      for (const engine of engines) await engine.close();
      await dir.remove();
    }
  });
});

describe('as library calls, with an engine that went away', () => {
  it('with every engine down: 503 with Retry-After and a request id, no engine address; the address is in the log under that id', async () => {
    const dir = await tempDir();
    const gone = await startFakeEngine({ models: ['m'], tokens: 4, tokenDelayMs: 1 });
    const registry = `file://${dir.dir}`;
    const worker = await startEngineWorker({ url: gone.url, name: 'gone', metricsUrl: false, server: { registry, host: '127.0.0.1', port: 0, log: false } });
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write: (chunk: Buffer, _encoding, done) => void (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()),
    });
    const front = await startGateway({ port: 0, client: { registry, config: false, log: false, retryBudget: false }, log: { stream } });
    try {
      await gone.close();
      const response = await fetch(`${front.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(response.status).toBe(503);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      const requestId = response.headers.get('x-request-id')!;
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({
        error: {
          message: `no worker could take the request; retry after the Retry-After delay (request id ${requestId})`,
          type: 'service_unavailable_error',
          param: null,
          code: null,
        },
      });
      const enginePort = new URL(gone.url).port;
      expect(text).not.toContain(enginePort);
      expect(text).not.toMatch(/127\.0\.0\.1|engine|ECONNREFUSED/);
      await waitUntil(() => lines.some((line) => line['requestId'] === requestId), 'the failure logged');
      const logged = lines.find((line) => line['requestId'] === requestId)!;
      expect(logged).toMatchObject({ level: 50, component: 'gateway', status: 503 });
      expect(JSON.stringify(logged['err'])).toContain(`127.0.0.1:${enginePort}`);
    } finally {
      await front.close();
      await worker.close();
      await dir.remove();
    }
  });

  it('an engine refusing every prompt, 300 requests: at most 50 failure lines at once, then 10 a second; the lines count those not logged, and quote at most 512 characters of the URL', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write: (chunk: Buffer, _encoding, done) => void (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()),
    });
    const fleet = await startGatewayFleet({ engine: { models: ['m'], tokens: 4 }, gateway: { log: { stream } } });
    const ask = (query = ''): Promise<number> =>
      fetch(`${fleet.gateway.url}/v1/chat/completions${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      }).then(async (response) => (await response.text(), response.status));
    const failures = (): Record<string, unknown>[] => lines.filter((line) => line['status'] === 400);
    try {
      fleet.engine.failNext(400, 'the prompt is too long', 301);
      const started = performance.now();
      for (let i = 0; i < 300; i += 20) expect(await Promise.all(Array.from({ length: 20 }, () => ask()))).toEqual(Array(20).fill(400));
      const seconds = (performance.now() - started) / 1000;
      // Without the budget: a line (with a stack) per request, 300.
      expect(failures().length).toBeGreaterThanOrEqual(50);
      expect(failures().length).toBeLessThanOrEqual(50 + Math.ceil(10 * seconds) + 1);
      const logged = failures().length;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await ask(`?${'x'.repeat(2000)}`)).toBe(400);
      await waitUntil(() => failures().length > logged, 'one more line');
      // Each line written after some were held back counts them: together, every one.
      expect(failures().reduce((sum, line) => sum + ((line['notLogged'] as number | undefined) ?? 0), 0)).toBe(300 - logged);
      const counting = failures().find((line) => line['notLogged'] !== undefined)!;
      expect(counting['msg']).toMatch(/ failed with 400; \d+ failed requests before it were not logged \(over 10 lines a second\)$/);
      const last = failures().at(-1)!;
      expect(last['msg']).toMatch(/^POST \/v1\/chat\/completions\?x{491} failed with 400/);
      expect((last['path'] as string).length).toBe(512);
    } finally {
      await fleet.close();
    }
  });

  it('startEngineWorker + startGateway (with an API key): requests fail over to the worker whose engine is up', async () => {
    const dir = await tempDir();
    const up = await startFakeEngine({ models: ['m'], tokens: 4, tokenDelayMs: 1 });
    const down = await startFakeEngine({ models: ['m'], tokens: 4, tokenDelayMs: 1 });
    const registry = `file://${dir.dir}`;
    const server = { registry, host: '127.0.0.1', port: 0, log: false as const };
    const workers = [
      await startEngineWorker({ url: up.url, name: 'up', metricsUrl: false, server }),
      await startEngineWorker({ url: down.url, name: 'down', metricsUrl: false, server }),
    ];
    // Round robin sends every other request to the dead engine's worker: each is refused as
    // never sent and retried on the other worker, from the fresh gateway's first request.
    const front = await startGateway({ port: 0, loadbalance: 'round-robin', apiKey: 'sk-test', client: { registry, config: false, log: false } });
    try {
      // With apiKey set, a request without the key is refused and the key never echoed.
      const anonymous = await fetch(`${front.url}/v1/models`);
      expect(anonymous.status).toBe(401);
      const refusal = (await anonymous.json()) as { error: { type: string; code: string; message: string } };
      expect(refusal.error).toMatchObject({ type: 'authentication_error', code: 'invalid_api_key' });
      const wrong = await fetch(`${front.url}/v1/models`, { headers: { authorization: 'Bearer sk-tesT' } });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).not.toMatch(/sk-tes/);

      await down.close(); // the engine dies; its worker is still registered
      const servedBy: string[] = [];
      for (let i = 0; i < 10; i++) {
        const response = await fetch(`${front.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
          body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `q${i}` }] }),
        });
        expect(response.status).toBe(200);
        servedBy.push(response.headers.get('x-shuttle-worker')!);
      }
      expect(new Set(servedBy)).toEqual(new Set(['up']));
      expect(up.requests).toHaveLength(10);
    } finally {
      await front.close();
      for (const worker of workers) await worker.close();
      await up.close();
      await dir.remove();
    }
  });
  it('a worker whose engine refuses its credentials: the requests go to the other worker, and the client is never told 401', async () => {
    const dir = await tempDir();
    const good = await startFakeEngine({ models: ['m'], tokens: 4, tokenDelayMs: 1 });
    const locked = await startFakeEngine({ models: ['m'], tokens: 4, tokenDelayMs: 1 });
    const registry = `file://${dir.dir}`;
    const server = { registry, host: '127.0.0.1', port: 0, log: false as const };
    const workers = [
      await startEngineWorker({ url: good.url, name: 'good', metricsUrl: false, server }),
      await startEngineWorker({ url: locked.url, name: 'locked', metricsUrl: false, server }),
    ];
    // The second engine's key was rotated under its running worker (a worker started with a
    // wrong key does not start: it reads the engine's model list first).
    locked.failNext(401, 'invalid api key', 1000);
    const front = await startGateway({ port: 0, loadbalance: 'round-robin', client: { registry, config: false, log: false } });
    const ask = (i: number) =>
      fetch(`${front.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `q${i}` }] }),
      });
    try {
      for (let i = 0; i < 6; i++) {
        const response = await ask(i);
        expect(response.status).toBe(200);
        expect(response.headers.get('x-shuttle-worker')).toBe('good');
      }
      // With only the misconfigured worker left, the fault is the fleet's: a 5xx, not a 401.
      await workers[0]!.close();
      const alone = await ask(99);
      expect(alone.status).toBeGreaterThanOrEqual(500);
      expect(alone.status).not.toBe(501);
    } finally {
      await front.close();
      for (const worker of workers) await worker.close();
      await good.close();
      await locked.close();
      await dir.remove();
    }
  });
});
