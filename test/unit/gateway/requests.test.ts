import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { BadRequest, toOpenAiError } from '../../../src/gateway/openai-errors.js';
import { parseChat, parseCompletion, parseEmbeddings } from '../../../src/gateway/requests.js';

const fails = (fn: () => unknown): BadRequest => {
  try {
    fn();
  } catch (error) {
    if (error instanceof BadRequest) return error;
    throw error;
  }
  throw new Error('expected a BadRequest');
};

describe('OpenAI request bodies', () => {
  it('turns a chat body into a worker request, text parts joined', () => {
    const parsed = parseChat({
      model: 'm', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }],
      max_completion_tokens: 7, temperature: 0, top_p: 1, stop: ['\n'], seed: 3, stream: true, stream_options: { include_usage: true },
    });
    expect(parsed).toEqual({
      request: { model: 'm', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'ab' }], maxTokens: 7, temperature: 0, topP: 1, stop: ['\n'], seed: 3 },
      stream: true,
      includeUsage: true,
    });
  });

  it('names the field and the value of every bad input', () => {
    expect(fails(() => parseChat([])).message).toMatch(/the request body must be a JSON object, got \[\]/);
    expect(fails(() => parseChat({ messages: [{ role: 'user', content: 'x' }] }))).toMatchObject({ param: 'model' });
    expect(fails(() => parseChat({ model: 'm', messages: 'hi' }))).toMatchObject({ param: 'messages', message: 'messages must be a non-empty array, got "hi"' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ content: 'x' }] }))).toMatchObject({ param: 'messages[0].role' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).message).toMatch(/messages\[0\]\.content\[0\] must be a text part/);
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 })).message).toBe('max_tokens must be an integer from 1 to 1000000, got 0');
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], n: 2 }))).toMatchObject({ param: 'n' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop: [1] }))).toMatchObject({ param: 'stop' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }))).toMatchObject({ param: 'tools', message: 'tools is not supported by this gateway (it would change the answer; leave it out)' });
    expect(fails(() => parseCompletion({ model: 'm', prompt: 'x', echo: true }))).toMatchObject({ param: 'echo' });
    expect(parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: false, tools: null, user: 'u' }).request).toEqual({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(fails(() => parseCompletion({ model: 'm', prompt: ['a', 'b'] })).message).toMatch(/batches and token arrays are not supported/);
    expect(fails(() => parseEmbeddings({ model: 'm', input: [1, 2] }))).toMatchObject({ param: 'input' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: 'x', encoding_format: 'hex' }))).toMatchObject({ param: 'encoding_format' });
  });

  it('takes a one-string prompt array and both embedding encodings', () => {
    expect(parseCompletion({ model: 'm', prompt: ['only'] }).request).toEqual({ model: 'm', prompt: 'only' });
    expect(parseEmbeddings({ model: 'm', input: 'x' })).toEqual({ model: 'm', inputs: ['x'], base64: false });
    expect(parseEmbeddings({ model: 'm', input: ['x', 'y'], encoding_format: 'base64' })).toEqual({ model: 'm', inputs: ['x', 'y'], base64: true });
  });
});

describe('OpenAI error answers', () => {
  it('maps shuttle codes to statuses, with Retry-After on 429 and 503', () => {
    const of = (code: RpcCode, retryAfterMs?: number) => toOpenAiError(new RpcError(code, 'why', retryAfterMs === undefined ? {} : { retryAfterMs }), 2);
    expect(of(RpcCode.INVALID_ARGUMENT)).toEqual({ status: 400, body: { error: { message: 'why', type: 'invalid_request_error', param: null, code: null } } });
    expect(of(RpcCode.RESOURCE_EXHAUSTED, 2500)).toMatchObject({ status: 429, retryAfterSeconds: 3, body: { error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } } });
    expect(of(RpcCode.RESOURCE_EXHAUSTED).retryAfterSeconds).toBe(2);
    expect(of(RpcCode.UNAVAILABLE)).toMatchObject({ status: 503, retryAfterSeconds: 2 });
    expect(of(RpcCode.NOT_FOUND).status).toBe(404);
    expect(of(RpcCode.UNAUTHENTICATED).status).toBe(401);
    expect(of(RpcCode.DEADLINE_EXCEEDED).status).toBe(504);
    expect(of(RpcCode.INTERNAL).status).toBe(500);
    expect(toOpenAiError(new BadRequest('no such model', 'model', 404, 'model_not_found'), 1)).toEqual({
      status: 404, body: { error: { message: 'no such model', type: 'not_found_error', param: 'model', code: 'model_not_found' } },
    });
  });
});
