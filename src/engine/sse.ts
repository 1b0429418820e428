import { EventSourceParserStream } from 'eventsource-parser/stream';

/**
 * The `data` of each Server-Sent Event of an HTTP response body, in order, until the body ends
 * (the SSE framing — `data:` lines, multi-line events, comments, CRLF — is eventsource-parser's
 * job). Stops at OpenAI's `[DONE]` sentinel. Breaking out of the loop cancels the body.
 */
export async function* sseData(body: ReadableStream<Uint8Array>): AsyncGenerator<string, void, undefined> {
  const events = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  const reader = events.getReader();
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done === true) return;
      if (next.value.data === '[DONE]') return;
      yield next.value.data;
    }
  } finally {
    // Closes the upstream response when the consumer stops early (a cancelled generation).
    await reader.cancel().catch(() => {});
  }
}
