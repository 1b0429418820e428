import type { Readable } from 'node:stream';
import { createParser } from 'eventsource-parser';
import { RpcCode, RpcError } from '../errors/errors.js';

/**
 * The most one Server-Sent Event may buffer before its end arrives. An OpenAI chunk is a few
 * hundred bytes (a few KiB with logprobs); an engine that streams without ever ending an event
 * fails the call instead of growing the worker's memory.
 */
export const MAX_SSE_EVENT_CHARS = 1024 * 1024;

/**
 * The `data` of each Server-Sent Event of an HTTP response body, in order, until the body ends
 * (the SSE framing — `data:` lines, multi-line events, comments, CRLF, events split across
 * chunks — is eventsource-parser's job). Stops at OpenAI's `[DONE]` sentinel. Ending the loop
 * early, or any error, destroys the body, which closes the engine request. An event larger than
 * {@link MAX_SSE_EVENT_CHARS} fails with INTERNAL.
 */
export async function* sseData(body: Readable): AsyncGenerator<string, void, undefined> {
  // The parser's push callback fills a queue drained between chunks: no stream per request.
  const queue: string[] = [];
  let failure: Error | undefined;
  const parser = createParser({
    onEvent: (event) => queue.push(event.data),
    onError: (error) => {
      failure ??=
        error.type === 'max-buffer-size-exceeded'
          ? new RpcError(RpcCode.INTERNAL, `engine sent an SSE event over ${MAX_SSE_EVENT_CHARS} characters`)
          : new RpcError(RpcCode.INTERNAL, `engine sent a malformed SSE stream: ${error.message}`);
    },
    maxBufferSize: MAX_SSE_EVENT_CHARS,
  });
  // Decodes UTF-8 across chunk boundaries.
  body.setEncoding('utf8');
  let finished = false;
  try {
    for await (const text of body.iterator({ destroyOnReturn: false }) as AsyncIterable<string>) {
      parser.feed(text);
      if (failure !== undefined) throw failure;
      for (let data = queue.shift(); data !== undefined; data = queue.shift()) {
        if (data === '[DONE]') {
          finished = true;
          return;
        }
        yield data;
      }
    }
    finished = true;
  } finally {
    if (!finished) {
      // Cancelled, or broken: closing the connection is what tells the engine to stop.
      body.destroy();
    } else if (!body.readableEnded) {
      // After [DONE] only the body's end is due; read to it so the connection goes back to the
      // pool, but not for longer than a moment.
      const timer = setTimeout(() => body.destroy(), DRAIN_AFTER_DONE_MS).unref();
      body.once('close', () => clearTimeout(timer));
      body.resume();
    }
  }
}

/** How long the rest of a body after `[DONE]` may take before its connection is closed. */
const DRAIN_AFTER_DONE_MS = 5_000;
