import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RpcCode } from '../../../src/errors/errors.js';
import { MAX_SSE_EVENT_CHARS, sseData } from '../../../src/engine/sse.js';
import { readJson } from '../../../src/engine/upstream.js';

/** A body fed `chunks` as separate writes, then ended (unless `end` is false). */
function body(chunks: Array<string | Buffer>, end = true): PassThrough {
  const stream = new PassThrough();
  for (const chunk of chunks) stream.write(chunk);
  if (end) stream.end();
  return stream;
}

async function collect(stream: PassThrough): Promise<string[]> {
  const out: string[] = [];
  for await (const data of sseData(stream)) out.push(data);
  return out;
}

describe('sseData', () => {
  it('yields each event across chunk boundaries, CRLF, comments and a UTF-8 character split in two', async () => {
    const euro = Buffer.from('€');
    const stream = body([
      'data: {"a":1}\n\nda',
      'ta: two\r\n',
      '\r\n: a comment\n\ndata: ',
      euro.subarray(0, 1),
      Buffer.concat([euro.subarray(1), Buffer.from('\n\n')]),
    ]);
    expect(await collect(stream)).toEqual(['{"a":1}', 'two', '€']);
  });

  it('stops at [DONE] and leaves the connection to finish its body', async () => {
    const stream = body(['data: one\n\ndata: [DONE]\n\n'], false);
    expect(await collect(stream)).toEqual(['one']);
    expect(stream.destroyed).toBe(false);
    stream.end();
    await new Promise((resolve) => stream.once('close', resolve));
  });

  it('destroys the body when the reader stops early', async () => {
    const stream = body(['data: one\n\ndata: two\n\n'], false);
    for await (const _ of sseData(stream)) break;
    expect(stream.destroyed).toBe(true);
  });

  it(`fails with INTERNAL when one event grows past ${MAX_SSE_EVENT_CHARS} characters, and closes the body`, async () => {
    const stream = new PassThrough();
    const line = `data: ${'x'.repeat(64 * 1024)}\n`;
    // Writes until the reader gives up: never ends the event.
    const feeding = (async () => {
      for (let i = 0; i < 64 && !stream.destroyed; i++) {
        if (!stream.write(line)) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const error = await collect(stream).catch((failure: unknown) => failure);
    await feeding;
    expect(error).toMatchObject({ code: RpcCode.INTERNAL, message: expect.stringContaining(`SSE event over ${MAX_SSE_EVENT_CHARS} characters`) });
    expect(stream.destroyed).toBe(true);
  });
});

describe('readJson', () => {
  it('parses a body and names the request when it is not JSON', async () => {
    expect(await readJson(body(['{"data":', '[1,2]}']) as unknown as IncomingMessage, 'GET /x')).toEqual({ data: [1, 2] });
    await expect(readJson(body(['<html>']) as unknown as IncomingMessage, 'GET /x')).rejects.toMatchObject({
      code: RpcCode.INTERNAL,
      message: expect.stringContaining('engine answered GET /x with a body that is not JSON: "<html>"'),
    });
  });
});
