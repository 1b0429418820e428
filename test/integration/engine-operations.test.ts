import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type Proxied } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startEngineWorker, type EngineWorker } from 'shuttle-rpc/engine';
import { startGateway } from 'shuttle-rpc/gateway';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * How the engine adapter and the gateway behave when real engines are overloaded, restarting or
 * failing the way vLLM and SGLang do: engines written here (node:http on loopback) answer as
 * those engines answer, in front of real workers on a file registry, a real consumer and a real
 * gateway.
 */

/** What an engine written here does with a generation request. */
type Answer = (response: http.ServerResponse, body: Record<string, unknown>) => void;

interface Engine {
  readonly url: string;
  /** Generation requests received. */
  hits: number;
  /** What `GET /health` answers (vLLM and SGLang: 200 while they serve). */
  healthStatus: number;
  /** `GET /health` requests received. */
  healthChecks: number;
  /** Stops listening and drops every connection: the engine process is gone. */
  close(): Promise<void>;
  /** Listens on the same port again: the engine is back after a restart. */
  restart(): Promise<void>;
}

/** An engine answering generations with `answer`, `/health` with its `healthStatus`, and `/metrics` with an idle vLLM's figures. */
async function startEngine(answer: Answer): Promise<Engine> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => {
      if (request.url === '/metrics') return void response.end('vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n');
      if (request.url === '/health') {
        engine.healthChecks++;
        return void response.writeHead(engine.healthStatus).end();
      }
      engine.hits++;
      answer(response, JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>);
    });
  });
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const engine: Engine = {
    url: `http://127.0.0.1:${port}/v1`,
    hits: 0,
    healthStatus: 200,
    healthChecks: 0,
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    restart: () => listen(port),
  };
  return engine;
}

const sse = (response: http.ServerResponse, events: readonly unknown[]): void => {
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const event of events) response.write(`data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
  response.end('data: [DONE]\n\n');
};

/** A completion of one token. */
const answers: Answer = (response) => sse(response, [{ choices: [{ text: 'hi', finish_reason: null }] }, { choices: [{ text: '', finish_reason: 'stop' }] }]);

/** SGLang's answer to a stream when its waiting queue is full (`--max-queued-requests`): a 200 whose first event is the refusal. */
const queueFullEvent: Answer = (response) =>
  sse(response, [{ error: { object: 'error', message: 'The request queue is full.', type: 'Service Unavailable', param: null, code: 503 } }]);

/** The same refusal to a request that does not stream: a 503 with SGLang's error object at the top. */
const queueFullStatus: Answer = (response) => {
  response.writeHead(503, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ object: 'error', message: 'The request queue is full.', type: 'Service Unavailable', param: null, code: 503 }));
};

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A file registry, a worker in front of each engine, and a consumer that takes the workers in turn. */
async function fleet(engines: readonly Engine[], slots?: number, stallTimeoutMs?: number) {
  const dir = await tempDir();
  cleanup.push(() => dir.remove());
  const registry = `file://${dir.dir}`;
  const workers: EngineWorker[] = [];
  for (const [index, engine] of engines.entries()) {
    const worker = await startEngineWorker({
      url: engine.url,
      name: `w${index}`,
      models: ['m'],
      metricsIntervalMs: 100,
      ...(slots === undefined ? {} : { slots }),
      ...(stallTimeoutMs === undefined ? {} : { stallTimeoutMs }),
      server: { registry, host: '127.0.0.1', port: 0, log: false },
      log: false,
    });
    cleanup.push(() => worker.close());
    workers.push(worker);
  }
  const client = await createClient({ registry, config: false, log: false });
  cleanup.push(() => client.close());
  /** Whether the consumer sees worker `index` draining. */
  const draining = (index: number): boolean | undefined => client.providers().find((provider) => provider.metadata['name'] === `w${index}`)?.load?.draining;
  const llm = client.proxy<LlmApi>('inference.LLM', { loadbalance: 'round-robin' });
  await client.ready();
  return { registry, workers, client, draining, llm };
}

async function engine(answer: Answer): Promise<Engine> {
  const started = await startEngine(answer);
  cleanup.push(() => started.close());
  return started;
}

/** The text of a generation, or what it failed with. */
async function generate(llm: Proxied<LlmApi>, timeoutMs?: number): Promise<string | { code: number; message: string }> {
  try {
    let text = '';
    for await (const token of llm.generate({ prompt: 'p' }, timeoutMs === undefined ? {} : { timeoutMs })) text += token.text;
    return text;
  } catch (error) {
    return { code: (error as { code: number }).code, message: (error as Error).message };
  }
}

describe('an engine that turns a request away', () => {
  it.each([
    ['SGLang, a stream: a first SSE event with code 503', queueFullEvent],
    ['a 503 answer', queueFullStatus],
    [
      'a 429 answer with Retry-After',
      ((response) => {
        response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
        response.end(JSON.stringify({ error: { message: 'too many requests', type: 'rate_limit', code: 429 } }));
      }) as Answer,
    ],
  ])('did not run it (%s): the generation goes to another worker', async (_name, refusal) => {
    const refusing = await engine(refusal);
    const serving = await engine(answers);
    const { llm } = await fleet([refusing, serving]);
    // Round-robin gives each worker every other first attempt.
    for (let i = 0; i < 4; i++) expect(await generate(llm)).toBe('hi');
    expect(refusing.hits).toBeGreaterThan(0);
    expect(serving.hits).toBe(4);
  });

  it('SGLang, a stream turned away by every engine: the consumer sees UNAVAILABLE, and the gateway answers 503 with Retry-After (streaming or not), not 500', async () => {
    const { llm, registry } = await fleet([await engine(queueFullEvent)]);
    expect(await generate(llm)).toMatchObject({ code: RpcCode.UNAVAILABLE, message: expect.stringContaining('The request queue is full.') });
    const gateway = await startGateway({ port: 0, client: { registry, config: false, log: false }, log: false });
    cleanup.push(() => gateway.close());
    for (const stream of [false, true]) {
      const response = await fetch(`${gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', prompt: 'p', stream }),
      });
      expect({ stream, status: response.status, retryAfter: response.headers.get('retry-after') }).toEqual({ stream, status: 503, retryAfter: '1' });
      expect(await response.json()).toMatchObject({ error: { type: 'service_unavailable_error' } });
    }
  });

  it("a proxy's 503 in front of the engine (Envoy's, when the engine dropped a request it had read) is not sent to another engine: it may have run", async () => {
    const proxied = await engine((response) => {
      response.writeHead(503, { 'content-type': 'text/plain' });
      response.end('upstream connect error or disconnect/reset before headers. reset reason: connection termination');
    });
    const serving = await engine(answers);
    const { llm } = await fleet([proxied, serving]);
    const outcomes = [await generate(llm), await generate(llm)];
    expect(outcomes).toContainEqual({ code: RpcCode.UNAVAILABLE, message: expect.stringContaining('upstream connect error') });
    expect(proxied.hits).toBe(1);
    expect(serving.hits).toBe(1);
  });

  it.each([
    [400, RpcCode.INVALID_ARGUMENT],
    [500, RpcCode.INTERNAL],
  ])(
    'an error event with code %i before the first token is that status, and is not sent to another engine (the engine may have run it)',
    async (status, code) => {
      const failing = await engine((response) => sse(response, [{ error: { message: 'it failed', type: 'Error', param: null, code: status } }]));
      const serving = await engine(answers);
      const { llm } = await fleet([failing, serving]);
      const outcomes = [await generate(llm), await generate(llm)];
      expect(outcomes).toContainEqual({ code, message: expect.stringContaining('it failed') });
      expect(failing.hits).toBe(1);
      expect(serving.hits).toBe(1);
    },
  );
});

describe('an engine that is down or unhealthy', () => {
  it('restarting (connection refused): its worker says draining within a few checks, so consumers send it nothing, and takes calls again once the engine is back', async () => {
    const restarting = await engine(answers);
    const serving = await engine(answers);
    const { llm, draining, workers } = await fleet([restarting, serving]);
    await waitUntil(() => draining(0) === false && draining(1) === false, 'both workers published', 3000);
    await restarting.close();
    await waitUntil(() => draining(0) === true, 'the consumer sees the worker of the stopped engine draining', 3000);
    expect(workers[0]!.engineDown).toBe(true);
    for (let i = 0; i < 6; i++) expect(await generate(llm)).toBe('hi');
    expect(serving.hits).toBe(6);
    await restarting.restart();
    await waitUntil(() => draining(0) === false, 'the consumer sees the worker back', 3000);
    const before = restarting.hits;
    for (let i = 0; i < 4; i++) expect(await generate(llm)).toBe('hi');
    expect(restarting.hits).toBeGreaterThan(before);
  });

  it('answering 503 on /health while it still serves: the worker says draining (new calls go elsewhere), serves the calls that still come, and is back at the first 200', async () => {
    const unhealthy = await engine(answers);
    const { draining, workers, client } = await fleet([unhealthy]);
    await waitUntil(() => draining(0) === false, 'the worker published', 3000);
    unhealthy.healthStatus = 503;
    await waitUntil(() => draining(0) === true, 'the consumer sees the worker draining', 3000);
    expect(workers[0]!.engineDown).toBe(true);
    // A consumer that addresses the worker directly still gets an answer: the engine serves.
    const direct = await createClient({ registry: `shuttle://127.0.0.1:${workers[0]!.server.port}`, config: false, log: false });
    cleanup.push(() => direct.close());
    expect(await generate(direct.proxy<LlmApi>('inference.LLM'))).toBe('hi');
    // One that follows the registry is told no worker is available, before anything is sent.
    expect(await generate(client.proxy<LlmApi>('inference.LLM'))).toMatchObject({ code: RpcCode.UNAVAILABLE, message: expect.stringContaining('draining') });
    unhealthy.healthStatus = 200;
    await waitUntil(() => draining(0) === false, 'the consumer sees the worker back', 3000);
    expect(workers[0]!.engineDown).toBe(false);
  });

  it('hung while /health and /metrics still answer: its worker says draining once its calls have heard nothing for stallTimeoutMs, round-robin consumers send it nothing new, and it is back when the engine speaks again', async () => {
    let hanging = true;
    const held: http.ServerResponse[] = [];
    // Generations get their headers, then nothing while the engine hangs; /health says 200 throughout.
    const stuck = await engine((response) => {
      if (!hanging) return answers(response, {});
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.flushHeaders();
      held.push(response);
    });
    const serving = await engine(answers);
    const { llm, draining, workers } = await fleet([stuck, serving], undefined, 400);
    await waitUntil(() => draining(0) === false && draining(1) === false, 'both workers published', 3000);
    // Round-robin: the first call goes to one of the two; calls go on until one hangs on the stuck engine.
    const controller = new AbortController();
    const hung = (async () => {
      for (let i = 0; i < 4 && stuck.hits === 0; i++) {
        for await (const _ of llm.generate({ prompt: 'p' }, { signal: controller.signal, timeoutMs: 30_000 })) {
          // tokens from the serving engine; the stuck one sends none
        }
      }
    })().catch(() => {});
    await waitUntil(() => stuck.hits === 1, 'a generation to reach the stuck engine', 3000);
    await waitUntil(() => draining(0) === true, 'the consumer sees the worker of the stuck engine draining', 3000);
    expect(workers[0]!.engineStalled).toBe(true);
    expect(workers[0]!.engineDown).toBe(false);
    expect(stuck.healthStatus).toBe(200);
    // New calls all go to the serving engine, though round-robin would alternate.
    const servedBefore = serving.hits;
    for (let i = 0; i < 4; i++) expect(await generate(llm, 5000)).toBe('hi');
    expect(serving.hits - servedBefore).toBe(4);
    expect(stuck.hits).toBe(1);
    // The engine speaks again: the held generation gets its tokens, and the worker takes calls.
    hanging = false;
    for (const response of held) response.end(`data: ${JSON.stringify({ choices: [{ text: 'late', finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
    await hung;
    await waitUntil(() => draining(0) === false, 'the consumer sees the worker back', 3000);
    expect(workers[0]!.engineStalled).toBe(false);
    controller.abort();
  });

  it('without a health endpoint (404): the worker counts it as up and does not ask again', async () => {
    const plain = await engine(answers);
    plain.healthStatus = 404;
    const { draining, workers, llm } = await fleet([plain]);
    await waitUntil(() => draining(0) === false, 'the worker published', 3000);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(draining(0)).toBe(false);
    expect(workers[0]!.engineDown).toBe(false);
    expect(plain.healthChecks).toBe(1);
    expect(await generate(llm)).toBe('hi');
  });
});

describe('a gateway in front of a worker whose engine is down', () => {
  it("counts none of that worker's slots: with one of two 1-slot workers draining, the other gets one generation at a time", async () => {
    const down = await engine(answers);
    let open = 0;
    let most = 0;
    const slow = await engine((response) => {
      most = Math.max(most, ++open);
      setTimeout(() => {
        open--;
        answers(response, {});
      }, 200);
    });
    const { registry, draining } = await fleet([down, slow], 1);
    down.healthStatus = 503;
    await waitUntil(() => draining(0) === true, 'the consumer sees the worker of the unhealthy engine draining', 3000);
    const gateway = await startGateway({ port: 0, client: { registry, config: false, log: false }, log: false });
    cleanup.push(() => gateway.close());
    await fetch(`${gateway.url}/v1/models`);
    // The gateway's client must see the draining worker too before the requests go.
    await waitUntil(
      () => gateway.client.providers().some((provider) => provider.metadata['name'] === 'w0' && provider.load?.draining === true),
      "the gateway's client sees the worker draining",
      3000,
    );
    const statuses = await Promise.all(
      Array.from({ length: 3 }, () =>
        fetch(`${gateway.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', prompt: 'p' }),
        }).then((response) => response.status),
      ),
    );
    expect(statuses).toEqual([200, 200, 200]);
    expect(slow.hits).toBe(3);
    expect(most).toBe(1);
  });
});

describe('usage: what the engine reports, and what the gateway charges when it reports nothing', () => {
  const finish = { choices: [{ text: '', finish_reason: 'stop' }] };
  const counts = { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 };
  const text = (piece: string) => ({ choices: [{ text: piece, finish_reason: null }] });

  /** The `usage` of the gateway's streamed completion with `stream_options.include_usage`. */
  async function streamedUsage(answer: Answer): Promise<unknown> {
    const { registry } = await fleet([await engine(answer)]);
    const gateway = await startGateway({ port: 0, client: { registry, config: false, log: false }, log: false });
    cleanup.push(() => gateway.close());
    const response = await fetch(`${gateway.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', prompt: 'p', stream: true, stream_options: { include_usage: true } }),
    });
    const events = (await response.text())
      .split('\n\n')
      .filter((event) => event.startsWith('data: {'))
      .map((event) => JSON.parse(event.slice(6)) as { usage?: unknown });
    // Every chunk has usage then; it is null in all but the last.
    return events.find((event) => event.usage != null)?.usage;
  }

  it.each([
    ['in a chunk of its own after the finish (vLLM, SGLang)', [text('a'), text('b'), finish, { choices: [], usage: counts }]],
    ['in the chunk with the finish_reason', [text('a'), text('b'), { ...finish, usage: counts }]],
    [
      'in every chunk (vLLM continuous_usage_stats), the last counts',
      [
        { ...text('a'), usage: { ...counts, completion_tokens: 1 } },
        { ...text('b'), usage: counts },
        { ...finish, usage: counts },
      ],
    ],
  ])('sent %s: the gateway passes it on', async (_where, events) => {
    expect(await streamedUsage((response) => sse(response, events))).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
  });

  it('an engine that sends none: the gateway counts the chunks as output tokens', async () => {
    expect(await streamedUsage((response) => sse(response, [text('a'), text('b'), finish]))).toMatchObject({ completion_tokens: 2 });
  });

  it("an engine that reports no prompt tokens: admission charges the tenant the gateway's own estimate of the prompt, not nothing", async () => {
    const { registry } = await fleet([await engine((response) => sse(response, [text('a'), finish]))]);
    // 60 tokens a minute: a prompt of 2,400 characters (about 600 tokens) spends ten minutes of it.
    const gateway = await startGateway({
      port: 0,
      client: { registry, config: false, log: false },
      log: false,
      admission: { tenants: { bob: { tokensPerMinute: 60 } }, maxWaitMs: 1000 },
    });
    cleanup.push(() => gateway.close());
    const ask = () =>
      fetch(`${gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant-id': 'bob' },
        body: JSON.stringify({ model: 'm', prompt: 'x'.repeat(2400), max_tokens: 1 }),
      });
    expect((await ask()).status).toBe(200);
    // The tenant's bucket is ten minutes short: the next request is turned away at once, told when to come back.
    const second = await ask();
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(500);
  });
});

describe("an engine's kept-alive connections", () => {
  it('closed all at once (a restart, a proxy ending connections that went idle together): the next generations go out on a new connection and succeed', async () => {
    // The connections of the first burst are reset as the next request arrives on them, before any byte of answer.
    const doomed = new Set<unknown>();
    let restarted = false;
    const flaky = await engine((response, _body) => {
      const socket = response.req.socket;
      if (restarted && doomed.has(socket)) return void socket.destroy();
      if (!restarted) doomed.add(socket);
      setTimeout(() => answers(response, {}), 50);
    });
    const { llm } = await fleet([flaky]);
    expect(await Promise.all(Array.from({ length: 4 }, () => generate(llm)))).toEqual(['hi', 'hi', 'hi', 'hi']);
    expect(doomed.size).toBeGreaterThan(1);
    restarted = true;
    for (let i = 0; i < 3; i++) expect(await generate(llm)).toBe('hi');
  });
});

describe('an engine that hangs after its answer began', () => {
  it('ends the call at its deadline and closes the engine request; while calls pile up, the worker reports them waiting though the stale /metrics say idle, and stops when they end', async () => {
    let closed = 0;
    const hung = await engine((response) => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.flushHeaders();
      response.once('close', () => closed++);
    });
    const { llm, client } = await fleet([hung]);
    const load = () => client.providers()[0]?.load;
    const started = Date.now();
    expect(await generate(llm, 500)).toMatchObject({ code: RpcCode.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(2000);
    await waitUntil(() => closed === 1, 'the engine saw its request closed', 2000);
    const controller = new AbortController();
    const pending = Array.from({ length: 3 }, () =>
      (async () => {
        for await (const _ of llm.generate({ prompt: 'p' }, { signal: controller.signal, timeoutMs: 30_000 })) {
          // no token comes
        }
      })().catch(() => {}),
    );
    await waitUntil(
      () => (load()?.waiting ?? 0) >= 3,
      () => `the worker reports 3 waiting (load ${JSON.stringify(load())})`,
      3000,
    );
    controller.abort();
    await Promise.all(pending);
    await waitUntil(
      () => load()?.waiting === 0,
      () => `the worker reports none waiting (load ${JSON.stringify(load())})`,
      3000,
    );
    await waitUntil(() => closed === 4, 'the engine saw every request closed', 2000);
  });
});
