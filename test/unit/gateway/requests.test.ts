import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { admissionFailure, BadRequest, streamBroken, toOpenAiError } from '../../../src/gateway/openai-errors.js';
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
      model: 'm',
      messages: [
        { role: 'system', content: 'be brief' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        },
      ],
      max_completion_tokens: 7,
      temperature: 0,
      top_p: 1,
      stop: ['\n'],
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(parsed).toEqual({
      request: {
        model: 'm',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'ab' },
        ],
        maxTokens: 7,
        temperature: 0,
        topP: 1,
        stop: ['\n'],
        seed: 3,
      },
      stream: true,
      includeUsage: true,
    });
  });

  it('names the field and the value of every bad input', () => {
    expect(fails(() => parseChat([])).message).toMatch(/the request body must be a JSON object, got \[\]/);
    expect(fails(() => parseChat({ messages: [{ role: 'user', content: 'x' }] }))).toMatchObject({ param: 'model' });
    expect(fails(() => parseChat({ model: 'm'.repeat(257), messages: [{ role: 'user', content: 'x' }] }))).toMatchObject({
      param: 'model',
      message: 'model must be at most 256 characters, got 257',
    });
    expect(fails(() => parseChat({ model: 'm', messages: 'hi' }))).toMatchObject({
      param: 'messages',
      message: 'messages must be a non-empty array, got "hi"',
    });
    expect(fails(() => parseChat({ model: 'm', messages: [{ content: 'x' }] }))).toMatchObject({ param: 'messages[0].role' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url' }] }] })).message).toMatch(
      /messages\[0\]\.content\[0\] must be a text part/,
    );
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 })).message).toBe(
      'max_tokens must be an integer from 1 to 1000000, got 0',
    );
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], n: 2 }))).toMatchObject({ param: 'n' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop: [1] }))).toMatchObject({ param: 'stop' });
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop: ['\n', 'x'.repeat(1025)] }))).toMatchObject({
      param: 'stop',
      message: expect.stringContaining('an array of at most 4 strings of at most 1024 characters'),
    });
    expect(parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stop: 'y'.repeat(1024) }).request.stop).toHaveLength(1024);
    expect(fails(() => parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }))).toMatchObject({
      param: 'tools',
      message: 'tools is not supported by this gateway (it would change the answer; leave it out)',
    });
    expect(fails(() => parseCompletion({ model: 'm', prompt: 'x', echo: true }))).toMatchObject({ param: 'echo' });
    expect(parseChat({ model: 'm', messages: [{ role: 'user', content: 'x' }], logprobs: false, tools: null, user: 'u' }).request).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(fails(() => parseCompletion({ model: 'm', prompt: ['a', 'b'] })).message).toMatch(/batches and token arrays are not supported/);
    expect(fails(() => parseEmbeddings({ model: 'm', input: [1, -2] }))).toMatchObject({ param: 'input' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: 'x', encoding_format: 'hex' }))).toMatchObject({ param: 'encoding_format' });
  });

  it("refuses numbers out of range with OpenAI's codes, and n > 1 as an unsupported value", () => {
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    for (const [fields, param, code] of [
      [{ temperature: 3 }, 'temperature', 'decimal_above_max_value'],
      [{ top_p: -0.5 }, 'top_p', 'decimal_below_min_value'],
      [{ presence_penalty: 'high' }, 'presence_penalty', 'invalid_type'],
      [{ max_tokens: 0 }, 'max_tokens', 'integer_below_min_value'],
      [{ max_tokens: 2_000_000 }, 'max_tokens', 'integer_above_max_value'],
      [{ max_tokens: 2.5 }, 'max_tokens', 'invalid_type'],
      [{ seed: '7' }, 'seed', 'invalid_type'],
      [{ n: 2 }, 'n', 'unsupported_value'],
    ] as const) {
      expect(
        fails(() => parseChat({ ...chat, ...fields })),
        JSON.stringify(fields),
      ).toMatchObject({ status: 400, param, code });
    }
  });

  it('checks max_tokens and max_completion_tokens each under its own name; max_completion_tokens wins', () => {
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    expect(fails(() => parseChat({ ...chat, max_completion_tokens: null, max_tokens: -1 }))).toMatchObject({
      param: 'max_tokens',
      message: 'max_tokens must be an integer from 1 to 1000000, got -1',
    });
    expect(fails(() => parseChat({ ...chat, max_completion_tokens: 5, max_tokens: 'many' }))).toMatchObject({ param: 'max_tokens' });
    expect(fails(() => parseChat({ ...chat, max_completion_tokens: 2.5, max_tokens: 5 }))).toMatchObject({ param: 'max_completion_tokens' });
    expect(parseChat({ ...chat, max_completion_tokens: 5, max_tokens: 9 }).request.maxTokens).toBe(5);
    expect(parseChat({ ...chat, max_completion_tokens: null, max_tokens: 9 }).request.maxTokens).toBe(9);
    expect(parseChat({ ...chat, max_tokens: null }).request.maxTokens).toBeUndefined();
  });

  it('checks the type of a field it ignores, as OpenAI does, and accepts null for it', () => {
    const chat = { model: 'm', messages: [{ role: 'user', content: 'x' }] };
    expect(fails(() => parseChat({ ...chat, user: 5 }))).toMatchObject({
      status: 400,
      param: 'user',
      code: 'invalid_type',
      message: "Invalid type for 'user': expected a string, but got an integer instead.",
    });
    expect(fails(() => parseChat({ ...chat, store: 'yes' }))).toMatchObject({ param: 'store', code: 'invalid_type' });
    expect(fails(() => parseChat({ ...chat, metadata: ['a'] }))).toMatchObject({ param: 'metadata', message: expect.stringContaining('but got an array') });
    expect(fails(() => parseChat({ ...chat, parallel_tool_calls: 1 }))).toMatchObject({ param: 'parallel_tool_calls' });
    expect(fails(() => parseCompletion({ model: 'm', prompt: 'x', service_tier: 1 }))).toMatchObject({ param: 'service_tier' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: 'x', user: {} }))).toMatchObject({ param: 'user', code: 'invalid_type' });
    const ignored = { user: 'u', store: false, metadata: { k: 'v' }, service_tier: 'auto', safety_identifier: null, prompt_cache_key: 'c' };
    expect(parseChat({ ...chat, ...ignored, parallel_tool_calls: true, prediction: { type: 'content', content: 'x' } }).request).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(parseCompletion({ model: 'm', prompt: 'x', ...ignored }).request).toEqual({ model: 'm', prompt: 'x' });
  });

  it('refuses an empty embedding input, naming which, as OpenAI does', () => {
    expect(fails(() => parseEmbeddings({ model: 'm', input: '' }))).toMatchObject({ param: 'input', code: 'invalid_value' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: ['a', '', 'b'] }))).toMatchObject({
      param: 'input[1]',
      message: 'input[1] is an empty string; each input must hold some text',
    });
    expect(parseEmbeddings({ model: 'm', input: [' '] }).inputs).toEqual([' ']);
  });

  it('takes embedding inputs as token ids, as OpenAI does: one array of ids, or an array of such arrays; never mixed with strings', () => {
    expect(parseEmbeddings({ model: 'm', input: [1, 2, 3] }).inputs).toEqual([[1, 2, 3]]);
    expect(parseEmbeddings({ model: 'm', input: [[1, 2], [0], [2 ** 31 - 1]] }).inputs).toEqual([[1, 2], [0], [2 ** 31 - 1]]);
    expect(fails(() => parseEmbeddings({ model: 'm', input: [1.5, 2] }))).toMatchObject({
      param: 'input',
      message: expect.stringContaining('whole number from 0'),
    });
    expect(fails(() => parseEmbeddings({ model: 'm', input: [2 ** 31] }))).toMatchObject({ param: 'input' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: [[1], []] }))).toMatchObject({ param: 'input[1]' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: [[1], 'text'] }))).toMatchObject({
      param: 'input[1]',
      message: expect.stringContaining('input[1] must be a non-empty array of token ids'),
    });
    expect(fails(() => parseEmbeddings({ model: 'm', input: ['text', [1]] }))).toMatchObject({
      param: 'input[1]',
      message: expect.stringContaining('must be a string, as input[0] is'),
    });
    expect(fails(() => parseEmbeddings({ model: 'm', input: [[1, 'a']] }))).toMatchObject({ param: 'input[0]' });
    expect(fails(() => parseEmbeddings({ model: 'm', input: [{}] }))).toMatchObject({
      param: 'input[0]',
      message: 'input[0] must be a string or an array of token ids, got {}',
    });
    expect(fails(() => parseEmbeddings({ model: 'm', input: Array.from({ length: 2049 }, () => [1]) }))).toMatchObject({ param: 'input' });
  });

  it('takes a one-string prompt array and both embedding encodings', () => {
    expect(parseCompletion({ model: 'm', prompt: ['only'] }).request).toEqual({ model: 'm', prompt: 'only' });
    expect(parseEmbeddings({ model: 'm', input: 'x' })).toEqual({ model: 'm', inputs: ['x'], base64: false });
    expect(parseEmbeddings({ model: 'm', input: ['x', 'y'], encoding_format: 'base64' })).toEqual({ model: 'm', inputs: ['x', 'y'], base64: true });
  });
});

describe('OpenAI error answers', () => {
  it('maps shuttle codes to statuses, with Retry-After on 429 and 503; what came from a worker never reaches the client', () => {
    const of = (code: RpcCode, retryAfterMs?: number) =>
      toOpenAiError(
        new RpcError(code, 'engine POST http://10.1.2.3:8000/v1/completions failed: ECONNREFUSED', retryAfterMs === undefined ? {} : { retryAfterMs }),
        2,
        'req-1',
      );
    expect(of(RpcCode.INVALID_ARGUMENT)).toEqual({
      status: 400,
      internal: true,
      body: { error: { message: 'a worker refused the request as invalid (request id req-1)', type: 'invalid_request_error', param: null, code: null } },
    });
    expect(of(RpcCode.RESOURCE_EXHAUSTED, 2500)).toMatchObject({
      status: 429,
      retryAfterSeconds: 3,
      body: { error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } },
    });
    expect(of(RpcCode.RESOURCE_EXHAUSTED).retryAfterSeconds).toBe(2);
    expect(of(RpcCode.UNAVAILABLE)).toMatchObject({ status: 503, retryAfterSeconds: 2 });
    expect(of(RpcCode.NOT_FOUND).status).toBe(404);
    // The gateway's own credentials to its fleet were refused: nothing the client can change.
    expect(of(RpcCode.UNAUTHENTICATED)).toMatchObject({ status: 502, body: { error: { type: 'server_error' } } });
    expect(of(RpcCode.PERMISSION_DENIED).status).toBe(502);
    expect(of(RpcCode.DEADLINE_EXCEEDED).status).toBe(504);
    expect(of(RpcCode.INTERNAL).status).toBe(500);
    for (const code of Object.values(RpcCode).filter((value) => value !== RpcCode.OK)) {
      expect(JSON.stringify(of(code).body)).not.toMatch(/10\.1\.2\.3|ECONNREFUSED|engine/);
    }
    expect(JSON.stringify(toOpenAiError(new Error('at /srv/app/x.js'), 1, 'req-2').body)).toBe(
      JSON.stringify({ error: { message: 'internal error (request id req-2)', type: 'server_error', param: null, code: null } }),
    );
    expect(toOpenAiError(new BadRequest('no such model', 'model', 404, 'model_not_found'), 1, 'req-3')).toEqual({
      status: 404,
      internal: false,
      body: { error: { message: 'no such model', type: 'not_found_error', param: 'model', code: 'model_not_found' } },
    });
  });

  it("a request the engine refused as invalid gets the engine's words, made safe; nothing else of the worker's message", () => {
    const refused = (code: RpcCode, engineMessage: unknown) =>
      toOpenAiError(
        new RpcError(code, 'engine answered 400 to POST http://10.1.2.3:8000/v1/completions: x', { details: { httpStatus: 400, engineMessage } }),
        2,
        'req-7',
      );
    expect(refused(RpcCode.INVALID_ARGUMENT, 'temperature must be in [0, 2], got 9')).toEqual({
      status: 400,
      internal: true,
      body: {
        error: {
          message: 'the engine refused the request: temperature must be in [0, 2], got 9 (request id req-7)',
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      },
    });
    expect(refused(RpcCode.NOT_FOUND, 'The model `lora-7` does not exist.')).toMatchObject({
      status: 404,
      body: { error: { message: 'the engine refused the request: The model `lora-7` does not exist. (request id req-7)' } },
    });
    // A hostile or broken worker: control characters, credentials, a flood of text, not a string.
    const forged = refused(RpcCode.INVALID_ARGUMENT, `bad\u001b[31m\r\n{"level":50,"msg":"forged"} see http://admin:hunter2@10.0.0.9/ ${'x'.repeat(100_000)}`)
      .body.error.message;
    expect([...forged].filter((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)).toEqual([]);
    expect(forged).not.toContain('hunter2');
    expect(forged.length).toBeLessThan(700);
    expect(refused(RpcCode.INVALID_ARGUMENT, { message: 'an object' }).body.error.message).toBe('a worker refused the request as invalid (request id req-7)');
    expect(refused(RpcCode.INVALID_ARGUMENT, '  ').body.error.message).toBe('a worker refused the request as invalid (request id req-7)');
    // Only refusals of the request carry words: a 500's stay in the log.
    expect(refused(RpcCode.INTERNAL, 'stack at /srv/engine.py:12').body.error.message).toBe('internal error (request id req-7)');
  });

  it("a refusal by the gateway's own admission queue says why, with its Retry-After, not that every worker is saturated", () => {
    const full = new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'the admission queue is full (1024 calls waiting, maxQueued 1024); retry in 2300 ms', {
      retryAfterMs: 2300,
      details: { reason: 'queue_full' },
    });
    expect(toOpenAiError(admissionFailure(full), 1, 'req-5')).toEqual({
      status: 429,
      internal: false,
      retryAfterSeconds: 3,
      body: {
        error: {
          message:
            "the gateway's admission queue turned the request away before any worker saw it: the admission queue is full (1024 calls waiting, maxQueued 1024); retry in 2300 ms",
          type: 'rate_limit_error',
          param: null,
          code: 'rate_limit_exceeded',
        },
      },
    });
    const late = new RpcError(
      RpcCode.RESOURCE_EXHAUSTED,
      "about 40000 ms of queue ahead, more than the 30000 ms left before the call's deadline; retry in 40000 ms",
      { retryAfterMs: 40_000 },
    );
    expect(toOpenAiError(admissionFailure(late), 1, 'req-6')).toMatchObject({
      status: 429,
      retryAfterSeconds: 40,
      body: { error: { message: expect.stringContaining("more than the 30000 ms left before the call's deadline") } },
    });
    const waited = new RpcError(RpcCode.DEADLINE_EXCEEDED, "waited 30000 ms in the admission queue without a free slot; the call's deadline passed");
    expect(toOpenAiError(admissionFailure(waited), 1, 'req-7')).toMatchObject({
      status: 504,
      body: {
        error: {
          message: "no worker slot came free in time: waited 30000 ms in the admission queue without a free slot; the call's deadline passed",
          type: 'timeout_error',
        },
      },
    });
    // The client going away is not the queue's doing: passed on as it was.
    const cancelled = new RpcError(RpcCode.CANCELLED, 'the HTTP client disconnected');
    expect(admissionFailure(cancelled)).toBe(cancelled);
  });

  it('a stream that broke says after how many tokens', () => {
    expect(streamBroken(9, 'req-4')).toEqual({
      error: {
        message: 'the stream broke after 9 tokens; the answer is incomplete (request id req-4)',
        type: 'server_error',
        param: null,
        code: 'stream_interrupted',
      },
    });
  });
});

describe('chat messages, checked as OpenAI checks them', () => {
  const chat = (messages: unknown[]) => () => parseChat({ model: 'm', messages });
  it('refuses a role OpenAI does not have, naming the field and the roles it has', () => {
    expect(fails(chat([{ role: 'wizard', content: 'x' }]))).toMatchObject({
      status: 400,
      param: 'messages[0].role',
      code: 'invalid_value',
      message: "Invalid value: 'wizard'. Supported values are: 'developer', 'system', 'user', 'assistant', 'tool', and 'function'.",
    });
    expect(
      fails(
        chat([
          { role: 'user', content: 'x' },
          { role: 7, content: 'x' },
        ]),
      ),
    ).toMatchObject({ param: 'messages[1].role', code: 'invalid_value' });
    expect(fails(chat([{ content: 'x' }]))).toMatchObject({ param: 'messages[0].role', code: 'missing_required_parameter' });
  });

  it('refuses shapes OpenAI refuses: missing content, wrong types, fields a role does not have, a tool message without its call id', () => {
    expect(fails(chat([{ role: 'user' }]))).toMatchObject({
      param: 'messages[0].content',
      code: 'missing_required_parameter',
      message: "Missing required parameter: 'messages[0].content'.",
    });
    expect(fails(chat([{ role: 'user', content: 5 }]))).toMatchObject({
      param: 'messages[0].content',
      code: 'invalid_type',
      message: "Invalid type for 'messages[0].content': expected one of a string or array of objects, but got an integer instead.",
    });
    expect(fails(chat(['hi']))).toMatchObject({ param: 'messages[0]', code: 'invalid_type' });
    expect(fails(chat([{ role: 'user', content: 'x', tool_call_id: 'a' }]))).toMatchObject({ param: 'messages[0].tool_call_id', code: 'invalid_value' });
    expect(fails(chat([{ role: 'user', content: 'x', name: 3 }]))).toMatchObject({ param: 'messages[0].name', code: 'invalid_type' });
    expect(fails(chat([{ role: 'assistant', content: null, tool_calls: [{}] }]))).toMatchObject({ param: 'messages[0].tool_calls' });
  });

  it('takes the roles the workers can carry in their allowed shape, name included', () => {
    const messages = [
      { role: 'developer', content: 'd' },
      { role: 'system', content: 's', name: 'x' },
      { role: 'user', content: [{ type: 'text', text: 'u' }] },
      { role: 'assistant', content: null, refusal: null, tool_calls: null },
      { role: 'assistant', content: 'a', name: 'bot' },
    ];
    expect(parseChat({ model: 'm', messages }).request.messages).toEqual([
      { role: 'developer', content: 'd' },
      { role: 'system', content: 's', name: 'x' },
      { role: 'user', content: 'u' },
      { role: 'assistant', content: '' },
      { role: 'assistant', content: 'a', name: 'bot' },
    ]);
  });

  it('refuses what a message says that the worker contract would drop: tool and function messages, a refusal, non-text parts', () => {
    const user = { role: 'user', content: 'x' };
    expect(fails(chat([user, { role: 'tool', content: 't', tool_call_id: 'c1' }]))).toMatchObject({
      status: 400,
      param: 'messages[1].role',
      code: 'unsupported_parameter',
      message: expect.stringMatching(/^messages\[1\] is a tool message, the answer to a tool call; this gateway does not support tool calls/),
    });
    expect(fails(chat([user, { role: 'function', content: 'f', name: 'fn' }]))).toMatchObject({ param: 'messages[1].role', code: 'unsupported_parameter' });
    expect(fails(chat([user, { role: 'assistant', content: null, refusal: 'no' }]))).toMatchObject({
      param: 'messages[1].refusal',
      code: 'unsupported_parameter',
    });
    expect(
      fails(
        chat([
          {
            role: 'user',
            content: [
              { type: 'text', text: 'a' },
              { type: 'image_url', image_url: { url: 'http://x' } },
            ],
          },
        ]),
      ),
    ).toMatchObject({
      param: 'messages[0].content[1]',
      code: 'unsupported_parameter',
      message: expect.stringContaining('(this one is "image_url")'),
    });
    expect(fails(chat([{ role: 'user', content: [{ type: 'text' }] }]))).toMatchObject({ param: 'messages[0].content[0]', code: 'invalid_value' });
    // No parts at all is no message, as OpenAI says; no messages at all likewise.
    expect(fails(chat([{ role: 'user', content: [] }]))).toMatchObject({
      param: 'messages[0].content',
      code: 'empty_array',
      message: "Invalid 'messages[0].content': empty array. Expected an array with minimum length 1, but got an empty array instead.",
    });
    expect(fails(chat([]))).toMatchObject({ param: 'messages', code: 'empty_array' });
    expect(fails(() => parseChat({ model: 'm', messages: 'hi' }))).toMatchObject({ param: 'messages', code: 'invalid_type' });
  });
});
