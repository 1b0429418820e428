import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RpcError } from '../../../src/errors/errors.js';
import { closeUpstream, contextLengthDetails, createUpstream, postJson, retryAfterHeaderMs } from '../../../src/engine/upstream.js';
import { freePort } from '../../helpers/ports.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function failure(port: number): Promise<RpcError> {
  const upstream = createUpstream(`http://127.0.0.1:${port}/v1`, undefined);
  cleanups.push(() => closeUpstream(upstream));
  return postJson(upstream, '/chat/completions', { model: 'm', messages: [] }, new AbortController().signal).then(
    () => {
      throw new Error('expected the request to fail');
    },
    (error: RpcError) => error,
  );
}

describe('requests to an engine', () => {
  it('that never reached it (nothing listens) may go to another engine: neverSent', async () => {
    const error = await failure(await freePort());
    expect(error.details).toEqual({ neverSent: true });
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('that the engine read whole before it reset the connection may have crashed it: not neverSent', async () => {
    // An engine that reads a request to its end, then drops the connection (a prompt that crashes it).
    const engine = net.createServer((socket) => {
      let received = '';
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString();
        if (received.includes('"messages"')) socket.resetAndDestroy();
      });
    });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => engine.close());
    const error = await failure((engine.address() as net.AddressInfo).port);
    expect(error.details?.['neverSent']).toBeUndefined();
    expect(error.message).toMatch(/failed after the request was sent: ECONNRESET/);
  });
});

describe("an engine's Retry-After", () => {
  it('is read as seconds or as an HTTP-date, bounded to 10 minutes; nothing for a past date or a malformed one', () => {
    expect(retryAfterHeaderMs('3')).toBe(3000);
    const inTwentySeconds = new Date(Date.now() + 20_000).toUTCString();
    expect(retryAfterHeaderMs(inTwentySeconds)).toBeGreaterThan(18_000);
    expect(retryAfterHeaderMs(inTwentySeconds)).toBeLessThanOrEqual(20_000);
    expect(retryAfterHeaderMs('999999999')).toBe(600_000);
    expect(retryAfterHeaderMs(new Date(Date.now() + 86_400_000).toUTCString())).toBe(600_000);
    for (const header of [undefined, '', '0', '-5', '1.5', 'soon', new Date(Date.now() - 60_000).toUTCString()]) {
      expect(retryAfterHeaderMs(header)).toBeUndefined();
    }
  });
});

describe("the Retry-After of an engine whose clock is an hour off this host's", () => {
  async function refusal(offsetMs: number): Promise<RpcError> {
    // An engine an hour ahead (or behind) says "retry at my now + 10 s", and dates its answer by the same clock.
    const http = await import('node:http');
    const engine = http.createServer((_request, response) => {
      const engineNow = Date.now() + offsetMs;
      response.writeHead(429, {
        date: new Date(engineNow).toUTCString(),
        'retry-after': new Date(engineNow + 10_000).toUTCString(),
        'content-type': 'application/json',
      });
      response.end(JSON.stringify({ error: { message: 'queue full' } }));
    });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => engine.close());
    return failure((engine.address() as net.AddressInfo).port);
  }

  it('is measured against the answer’s own Date: about 10 s, not 10 minutes or nothing', async () => {
    for (const offsetMs of [3_600_000, -3_600_000]) {
      const error = await refusal(offsetMs);
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(9_000);
      expect(error.retryAfterMs).toBeLessThanOrEqual(11_000);
    }
  });
});

describe("an engine's words for a prompt too long for its context", () => {
  it("are read from vLLM's, SGLang's and OpenAI's messages, with the limit; other refusals are not", () => {
    for (const [message, limit] of [
      [
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
        4096,
      ],
      [
        "'max_tokens' or 'max_completion_tokens' is too large: 1000. This model's maximum context length is 2048 tokens and your request has 1500 input tokens (1000 > 2048 - 1500).",
        2048,
      ],
      ["The input (9000 tokens) is longer than the model's context length (8192 tokens).", 8192],
      ["Requested token count exceeds the model's maximum context length of 32768 tokens.", 32768],
      ['The prompt does not fit in the context window.', undefined],
    ] as const) {
      expect(contextLengthDetails(message), message).toEqual({
        reason: 'context_length_exceeded',
        ...(limit === undefined ? {} : { maxContextTokens: limit }),
      });
    }
    for (const message of ['temperature must be between 0 and 2', 'The model `x` does not exist.', '']) expect(contextLengthDetails(message)).toEqual({});
  });
});
