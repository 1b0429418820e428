import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeKvCache, type FakeKvCacheOptions, tokenize } from './fake-kv-cache.js';

/**
 * A fake OpenAI-compatible engine for tests and benchmarks (`startFakeEngine`): a real HTTP server on loopback that serves
 * `/v1/models`, streams `/v1/completions` and `/v1/chat/completions` token by token over SSE
 * (or answers them whole), embeds with `/v1/embeddings`, and exposes vLLM-style Prometheus
 * `/metrics` whose running count is the streams open right now. It records what it was asked
 * and which streams the client closed before the end (cancellations reaching the engine).
 */
export interface FakeEngine {
  /** `http://127.0.0.1:port/v1` */
  readonly url: string;
  readonly origin: string;
  /** Every generation and embedding request body, in arrival order, with its path. */
  readonly requests: Array<{ path: string; body: Record<string, unknown> }>;
  /** Streams open now. */
  readonly open: number;
  /** Streams the client closed before the engine finished them. */
  readonly aborted: number;
  /** Streams the engine finished. */
  readonly completed: number;
  /** Metric values served on /metrics besides running (waiting, KV use). */
  metrics: { waiting: number; kvUsage: number };
  /** Cut the connection of the next streaming generation after `tokens` tokens (an engine crash). */
  breakNext(tokens: number): void;
  /** Answer the next `count` generation/embedding requests with this HTTP error. */
  failNext(status: number, message: string, count?: number, headers?: Record<string, string>): void;
  /** The engine's prefix cache and its KV-event publisher, when `kvCache` was asked for. */
  readonly kvCache: FakeKvCache | undefined;
  close(): Promise<void>;
}

/** Options of {@link startFakeEngine}. */
export interface FakeEngineOptions {
  models?: string[];
  /** Tokens generated for each request (before max_tokens cuts them); the number of `texts` when those are given. */
  tokens?: number;
  /**
   * The tokens' texts, in order, instead of `tok0 `, `tok1 `…: each is one SSE chunk as given,
   * so a test can split a character across chunks (JSON.stringify sends a lone surrogate as its
   * `\ud83d` escape, as an engine that counts UTF-16 code units would).
   */
  texts?: readonly string[];
  /** Delay between tokens, ms. */
  tokenDelayMs?: number;
  /** Metric names style: vLLM (default) or SGLang. */
  style?: 'vllm' | 'sglang';
  /** Required bearer token, if any. */
  apiKey?: string;
  /**
   * Keep a prefix cache and publish its KV events as vLLM does (over ZeroMQ, at
   * `kvCache.endpoint`); prompts are then tokenized (fake), `usage` counts their tokens and the
   * cached ones, and `return_token_ids` is honoured.
   */
  kvCache?: FakeKvCacheOptions;
}

/**
 * Starts a fake engine on a free loopback port. It generates `tokens` tokens (`tok0 `, `tok1 `…;
 * fewer when `max_tokens` says so) `tokenDelayMs` apart; prompt tokens are always 5.
 */
export async function startFakeEngine(options: FakeEngineOptions = {}): Promise<FakeEngine> {
  const models = options.models ?? ['fake-model'];
  const tokenCount = options.tokens ?? options.texts?.length ?? 8;
  const delay = options.tokenDelayMs ?? 5;
  const requests: FakeEngine['requests'] = [];
  const state = { open: 0, aborted: 0, completed: 0, generated: 0 };
  const failures: Array<{ status: number; message: string; headers: Record<string, string> }> = [];
  const metrics = { waiting: 0, kvUsage: 0.25 };
  let breakAfter: number | undefined;
  const kvCache = options.kvCache === undefined ? undefined : await FakeKvCache.start(options.kvCache);

  const server = http.createServer((request, response) => {
    void handle(request, response).catch((error: Error) => {
      if (!response.headersSent) json(response, 500, { error: { message: error.message } });
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '').split('?')[0]!;
    if (request.method === 'GET' && path === '/metrics') return metricsText(response);
    if (options.apiKey !== undefined && request.headers.authorization !== `Bearer ${options.apiKey}`) {
      return json(response, 401, { error: { message: 'bad key', type: 'authentication_error' } });
    }
    if (request.method === 'GET' && path === '/v1/models') {
      return json(response, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })) });
    }
    if (request.method !== 'POST') return json(response, 404, { error: { message: `no ${request.method} ${path}` } });
    const body = JSON.parse(await readBody(request)) as Record<string, unknown>;
    requests.push({ path, body });
    if (path === '/tokenize' && kvCache !== undefined && options.kvCache?.tokenizeEndpoint !== false) {
      const tokens = tokenize(body);
      return json(response, 200, { tokens, count: tokens.length, max_model_len: 32768 });
    }
    const failure = failures.shift();
    if (failure !== undefined) {
      response.writeHead(failure.status, { 'content-type': 'application/json', ...failure.headers });
      response.end(JSON.stringify({ error: { message: failure.message, type: 'error' } }));
      return;
    }
    if (typeof body.model === 'string' && !models.includes(body.model)) {
      return json(response, 404, { error: { message: `The model \`${body.model}\` does not exist.`, type: 'NotFoundError' } });
    }
    if (path === '/v1/embeddings') {
      // Token ids (OpenAI's token-array input) embed as [count, first id, 0.5]; a text as
      // [length, first character's code, 0.5].
      const ids = Array.isArray(body.input) && body.input.every((id) => typeof id === 'number') ? (body.input as number[]) : undefined;
      const input = ids === undefined ? String(body.input) : '';
      const embedding = ids === undefined ? [input.length, input.charCodeAt(0) || 0, 0.5] : [ids.length, ids[0] ?? 0, 0.5];
      const tokens = ids === undefined ? Math.ceil(input.length / 4) : ids.length;
      return json(response, 200, {
        object: 'list',
        data: [{ object: 'embedding', index: 0, embedding }],
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      });
    }
    const chat = path === '/v1/chat/completions';
    if (!chat && path !== '/v1/completions') return json(response, 404, { error: { message: `no route ${path}` } });
    const count = Math.min(tokenCount, typeof body.max_tokens === 'number' ? body.max_tokens : tokenCount);
    const finish = count < tokenCount ? 'length' : 'stop';
    const texts = Array.from({ length: count }, (_, i) => options.texts?.[i % options.texts.length] ?? `tok${i} `);
    const prompt = kvCache === undefined ? undefined : await kvCache.prefill(body);
    const promptTokens = prompt?.tokenIds.length ?? 5;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: count,
      total_tokens: promptTokens + count,
      prompt_tokens_details: { cached_tokens: prompt?.cachedTokens ?? 2 },
    };
    // vLLM's placement of the prompt's token ids: top level for a chat, in the choice for a completion.
    const ids =
      prompt !== undefined && body.return_token_ids === true && options.kvCache?.returnTokenIds !== false ? { prompt_token_ids: prompt.tokenIds } : {};
    const id = 'fake-1';
    if (body.stream !== true) {
      await sleep(delay * count);
      state.generated += count;
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: texts.join('') }, finish_reason: finish }
        : { index: 0, text: texts.join(''), finish_reason: finish, ...ids };
      return json(response, 200, {
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        model: body.model,
        choices: [choice],
        usage,
        ...(chat ? ids : {}),
      });
    }
    state.open++;
    let finished = false;
    response.once('close', () => {
      state.open--;
      if (!finished) state.aborted++;
    });
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (payload: unknown): void => void response.write(`data: ${JSON.stringify(payload)}\n\n`);
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const cutAt = breakAfter;
    breakAfter = undefined;
    for (const [index, text] of texts.entries()) {
      await sleep(delay);
      if (response.destroyed) return;
      if (index === cutAt) {
        response.socket?.destroy();
        return;
      }
      state.generated++;
      const first = index === 0 ? ids : {};
      send({
        id,
        object,
        model: body.model,
        choices: [chat ? { index: 0, delta: { content: text }, finish_reason: null } : { index: 0, text, finish_reason: null, ...first }],
        ...(chat ? first : {}),
      });
    }
    send({ id, object, model: body.model, choices: [chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: '', finish_reason: finish }] });
    if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true) send({ id, object, model: body.model, choices: [], usage });
    finished = true;
    state.completed++;
    response.end('data: [DONE]\n\n');
  }

  function metricsText(response: ServerResponse): void {
    const sglang = options.style === 'sglang';
    const lines = sglang
      ? [
          '# TYPE sglang:num_running_reqs gauge',
          `sglang:num_running_reqs{model_name="${models[0]}"} ${state.open}`,
          '# TYPE sglang:num_queue_reqs gauge',
          `sglang:num_queue_reqs{model_name="${models[0]}"} ${metrics.waiting}`,
          '# TYPE sglang:token_usage gauge',
          `sglang:token_usage{model_name="${models[0]}"} ${metrics.kvUsage}`,
          '# TYPE sglang:gen_throughput gauge',
          `sglang:gen_throughput{model_name="${models[0]}"} 123.5`,
        ]
      : [
          '# HELP vllm:num_requests_running Number of requests in model execution batches.',
          '# TYPE vllm:num_requests_running gauge',
          `vllm:num_requests_running{model_name="${models[0]}"} ${state.open}.0`,
          '# TYPE vllm:num_requests_waiting gauge',
          `vllm:num_requests_waiting{model_name="${models[0]}"} ${metrics.waiting}.0`,
          '# TYPE vllm:kv_cache_usage_perc gauge',
          `vllm:kv_cache_usage_perc{model_name="${models[0]}"} ${metrics.kvUsage}`,
          '# TYPE vllm:generation_tokens_total counter',
          `vllm:generation_tokens_total{model_name="${models[0]}"} ${state.generated}.0`,
          '# TYPE vllm:cache_config_info gauge',
          `vllm:cache_config_info{block_size="16",num_gpu_blocks="1000"} 1.0`,
        ];
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    response.end(`${lines.join('\n')}\n`);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/v1`,
    origin,
    requests,
    get open() {
      return state.open;
    },
    get aborted() {
      return state.aborted;
    },
    get completed() {
      return state.completed;
    },
    metrics,
    kvCache,
    breakNext(tokens) {
      breakAfter = tokens;
    },
    failNext(status, message, count = 1, headers = {}) {
      for (let i = 0; i < count; i++) failures.push({ status, message, headers });
    },
    close: () =>
      new Promise<void>((resolve) => {
        kvCache?.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => resolve(text));
    request.on('error', reject);
  });
}

/** Waits `ms`; 0 only yields to the event loop (tokens back to back, for benchmarks). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));
}
