import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from 'shuttle-rpc/gateway';
import { startGatewayFleet, type GatewayFleet } from '../helpers/gateway-fleet.js';

/*
 * The gateway as a hostile or careless HTTP client meets it, every piece real on loopback (a
 * fake engine, an engine worker, the gateway): every answer is OpenAI's error shape with an
 * x-request-id — fields the workers cannot honour, what Fastify refuses (a URL that does not
 * decode, bad JSON, no route, a wrong method), what Node's HTTP parser refuses before Fastify
 * sees it (headers too large, not HTTP), a body that is not JSON, stream_options on an answer
 * that does not stream.
 */
let fleet: GatewayFleet | undefined;
let gateway: Gateway;

beforeAll(async () => {
  fleet = await startGatewayFleet({ engine: { models: ['m'], tokens: 4 }, gateway: { log: false } });
  ({ gateway } = fleet);
}, 30_000);

afterAll(async () => {
  await fleet?.close();
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** What `status`, `param` and `code` an error answer must have; its message must match `message`. */
function expectOpenAiError(answer: Answer, status: number, error: { message: RegExp; param?: string | null; code?: string | null }): void {
  expect(answer.status, answer.text).toBe(status);
  expect(answer.headers['x-request-id']).toMatch(UUID);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(answer.text) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error).toMatchObject({ message: expect.stringMatching(error.message), param: error.param ?? null });
  if (error.code !== undefined) expect(body.error.code).toBe(error.code);
  expect(body.error.type).toBe(status >= 500 ? expect.any(String) : status === 404 ? 'not_found_error' : 'invalid_request_error');
  // Nothing of Fastify's or Node's own: no error codes, no statusCode field, no stack.
  expect(answer.text).not.toMatch(/FST_|statusCode|HPE_|\bat .+:\d+:\d+/);
}

async function fetched(path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(`${gateway.url}${path}`, init);
  return { status: response.status, headers: Object.fromEntries(response.headers), text: await response.text() };
}

const postJson = (path: string, body: unknown): Promise<Answer> =>
  fetched(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Sends `request` as is on a new connection and reads the answer until the gateway closes it. */
async function raw(request: string): Promise<Answer> {
  const socket = net.connect(gateway.port, '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.write(request);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway kept the connection open; received ${JSON.stringify(received)}`)), 5000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const [head = '', text = ''] = received.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]), headers, text };
}

const chat = { model: 'm', messages: [{ role: 'user', content: 'hello' }] };

describe('every gateway answer is in OpenAI error shape', () => {
  it('a field that would change the answer is refused with 400 naming it, unknown fields too; its "off" value is accepted', async () => {
    expectOpenAiError(await postJson('/v1/embeddings', { model: 'm', input: 'x', dimensions: 8 }), 400, {
      message: /^dimensions is not supported by this gateway/,
      param: 'dimensions',
      code: 'unsupported_parameter',
    });
    for (const [field, value] of [
      ['response_format', { type: 'json_object' }],
      ['modalities', ['text', 'audio']],
      ['audio', { voice: 'alloy', format: 'wav' }],
      ['logprobs', true],
      ['top_logprobs', 2],
      ['web_search_options', {}],
      ['reasoning_effort', 'low'],
      ['verbosity', 'low'],
      ['logit_bias', { 50256: -100 }],
    ] as const) {
      expectOpenAiError(await postJson('/v1/chat/completions', { ...chat, [field]: value }), 400, {
        message: new RegExp(`^${field} is not supported by this gateway`),
        param: field,
        code: 'unsupported_parameter',
      });
    }
    expectOpenAiError(await postJson('/v1/completions', { model: 'm', prompt: 'x', best_of: 3 }), 400, { message: /^best_of/, param: 'best_of' });
    expectOpenAiError(await postJson('/v1/chat/completions', { ...chat, top_k: 5 }), 400, {
      message: /^top_k is not a parameter this gateway knows/,
      param: 'top_k',
      code: 'unknown_parameter',
    });
    // The values that change nothing, and fields that never change the answer, are served.
    const served = await postJson('/v1/chat/completions', {
      ...chat,
      response_format: { type: 'text' },
      modalities: ['text'],
      logprobs: false,
      logit_bias: {},
      service_tier: 'auto',
      parallel_tool_calls: true,
      prediction: { type: 'content', content: 'hello' },
      user: 'u',
    });
    expect(served.status, served.text).toBe(200);
    expect(served.headers['x-request-id']).toMatch(UUID);
    expect((await postJson('/v1/embeddings', { model: 'm', input: 'x', user: 'u' })).status).toBe(200);
  });

  it("Fastify's and Node's own refusals come in OpenAI's shape with an x-request-id: bad escape, bad JSON, 404, 405, 431, not HTTP", async () => {
    expectOpenAiError(await fetched('/v1/models%zz'), 400, { message: /^the URL \/v1\/models%zz is not valid/, code: 'invalid_url' });
    expectOpenAiError(await fetched('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":' }), 400, {
      message: /^the request body is not valid JSON/,
    });
    expectOpenAiError(await fetched('/v2/anything'), 404, { message: /^no route GET \/v2\/anything; this gateway serves \/v1\/chat\/completions/ });
    const wrongMethod = await fetched('/v1/chat/completions');
    expectOpenAiError(wrongMethod, 405, { message: /^\/v1\/chat\/completions does not take GET; it takes POST$/, code: 'method_not_allowed' });
    expect(wrongMethod.headers['allow']).toBe('POST');
    // Node's parser refuses these before Fastify sees a request.
    const tooLarge = await raw(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectOpenAiError(tooLarge, 431, { message: /^the request line and headers are larger than the \d+ bytes the gateway reads$/ });
    expect(tooLarge.headers['connection']).toBe('close');
    expectOpenAiError(await raw('HELLO\r\n\r\n'), 400, { message: /^the request is not valid HTTP\/1\.1/, code: 'invalid_http' });
    // The gateway still serves after each of them.
    expect((await fetched('/v1/models')).status).toBe(200);
  });

  it('a body that is not JSON (text/plain) is 415 naming application/json', async () => {
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded']) {
      expectOpenAiError(await fetched('/v1/chat/completions', { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify(chat) }), 415, {
        message: /is not supported; send application\/json$/,
        code: 'unsupported_media_type',
      });
    }
  });

  it('stream_options is refused unless stream is true', async () => {
    for (const stream of [false, undefined]) {
      expectOpenAiError(await postJson('/v1/chat/completions', { ...chat, stream, stream_options: { include_usage: true } }), 400, {
        message: /^stream_options is only allowed when stream is true$/,
        param: 'stream_options',
      });
    }
    expectOpenAiError(await postJson('/v1/completions', { model: 'm', prompt: 'x', stream_options: { include_usage: true } }), 400, {
      message: /^stream_options is only allowed when stream is true$/,
      param: 'stream_options',
    });
    const streamed = await postJson('/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } });
    expect(streamed.status).toBe(200);
    expect(streamed.text).toMatch(/"usage":\{/);
  });
});
