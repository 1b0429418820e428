import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, createClient, type Proxied } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startEngineWorker, type EngineWorker } from 'shuttle-rpc/engine';
import { startGateway } from 'shuttle-rpc/gateway';
import { tempDir } from '../helpers/tmp.js';

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
  readonly port: number;
  /** Generation requests received. */
  hits: number;
  close(): Promise<void>;
}

/** An engine on `port` (0: any) answering generations with `answer`, and `/metrics` with an idle vLLM's figures. */
async function startEngine(answer: Answer, port = 0): Promise<Engine> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.once('end', () => {
      if (request.url === '/metrics') return void response.end('vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n');
      engine.hits++;
      answer(response, JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  const engine: Engine = {
    url: `http://127.0.0.1:${bound}/v1`,
    port: bound,
    hits: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
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
async function fleet(engines: readonly Engine[]) {
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
      server: { registry, host: '127.0.0.1', port: 0, log: false },
      log: false,
    });
    cleanup.push(() => worker.close());
    workers.push(worker);
  }
  const client = await createClient({ registry, config: false, log: false });
  cleanup.push(() => client.close());
  return { registry, workers, client, llm: client.proxy<LlmApi>('inference.LLM', { loadbalance: 'round-robin' }) };
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
