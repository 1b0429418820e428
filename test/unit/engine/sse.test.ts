import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { MAX_SSE_EVENT_CHARS, relaySse, type SseRelay } from '../../../src/engine/sse.js';
import { readCapped, readJson } from '../../../src/engine/upstream.js';
import { AnswerBudget } from '../../../src/engine/answer-budget.js';

/** A body fed `chunks` as separate writes, then ended (unless `end` is false). */
function body(chunks: Array<string | Buffer>, end = true): PassThrough {
  const stream = new PassThrough();
  for (const chunk of chunks) stream.write(chunk);
  if (end) stream.end();
  return stream;
}

/** Relays every event's data as is; the trailer counts them. */
function relay(): SseRelay<string, number> & { events: number } {
  const counter = {
    events: 0,
    onEvent: (data: string) => {
      counter.events++;
      if (data === 'bad') throw new RpcError(RpcCode.INTERNAL, 'a bad event');
      return data;
    },
    onEnd: () => counter.events,
    onBroken: (error: Error) => new RpcError(RpcCode.UNAVAILABLE, `broke: ${error.message}`),
  };
  return counter;
}

async function read(stream: AsyncIterable<string>): Promise<{ values: string[]; trailer: unknown }> {
  const iterator = stream[Symbol.asyncIterator]();
  const values: string[] = [];
  for (;;) {
    const step = await iterator.next();
    if (step.done === true) return { values, trailer: step.value };
    values.push(step.value);
  }
}

describe('relaySse', () => {
  it('relays each event across chunk boundaries, CRLF, comments and a UTF-8 character split in two; the trailer comes last', async () => {
    const euro = Buffer.from('€');
    const source = body([
      'data: {"a":1}\n\nda',
      'ta: two\r\n',
      '\r\n: a comment\n\ndata: ',
      euro.subarray(0, 1),
      Buffer.concat([euro.subarray(1), Buffer.from('\n\n')]),
    ]);
    expect(await read(relaySse(source, relay()))).toEqual({ values: ['{"a":1}', 'two', '€'], trailer: 3 });
  });

  it('ends at [DONE] and reads the rest of the body, so its connection can be reused', async () => {
    const source = body(['data: one\n\ndata: [DONE]\n\n'], false);
    expect(await read(relaySse(source, relay()))).toEqual({ values: ['one'], trailer: 1 });
    expect(source.destroyed).toBe(false);
    source.end();
    await new Promise((resolve) => source.once('close', resolve));
    expect(source.readableEnded).toBe(true);
  });

  it('ends normally when the body ends without [DONE], and tells the relay it did', async () => {
    expect(await read(relaySse(body(['data: one\n\n']), relay()))).toEqual({ values: ['one'], trailer: 1 });
    const ends: boolean[] = [];
    await read(relaySse(body(['data: one\n\n']), { ...relay(), onEnd: (done) => ends.push(done) }));
    await read(relaySse(body(['data: one\n\ndata: [DONE]\n\n']), { ...relay(), onEnd: (done) => ends.push(done) }));
    expect(ends).toEqual([false, true]);
    // A relay that finds the answer incomplete without [DONE] fails the stream.
    const refusing = {
      ...relay(),
      onEnd: (): number => {
        throw new RpcError(RpcCode.UNAVAILABLE, 'cut short');
      },
    };
    await expect(read(relaySse(body(['data: one\n\n']), refusing))).rejects.toThrow(/cut short/);
  });

  it('ignores what the SSE specification says to ignore: a leading byte-order mark, unknown fields, a retry that is no number, a bare line', async () => {
    const source = body(['\uFEFFdata: one\n\n', 'x-trace: 1\nretry: soon\nping\ndata: two\n\n', 'data: [DONE]\n\n']);
    expect(await read(relaySse(source, relay()))).toEqual({ values: ['one', 'two'], trailer: 2 });
  });

  it('destroys the body when the reader leaves early', async () => {
    const source = body(['data: one\n\ndata: two\n\n'], false);
    const stream = relaySse(source, relay());
    expect(await stream.next()).toEqual({ done: false, value: 'one' });
    await stream.return();
    expect(source.destroyed).toBe(true);
  });

  it('pauses the body while the reader is 64 values behind, and resumes it as the reader catches up', async () => {
    const source = new PassThrough();
    const stream = relaySse(source, relay());
    source.write('data: x\n\n'.repeat(100));
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.isPaused()).toBe(true);
    expect(stream.buffered).toBe(100);
    for (let i = 0; i < 100; i++) await stream.next();
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.isPaused()).toBe(false);
    source.end('data: [DONE]\n\n');
    expect(await stream.next()).toEqual({ done: true, value: 100 });
  });

  it('fails with RESOURCE_EXHAUSTED when one read holds more events than may wait for a reader that is behind, and closes the body', async () => {
    const source = body(['data: x\n\n'.repeat(5000)], false);
    const stream = relaySse(source, relay());
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.destroyed).toBe(true);
    expect(stream.buffered).toBe(4096);
    let values = 0;
    const error = await (async () => {
      for (;;) {
        const step = await stream.next();
        if (step.done === true) return undefined;
        values++;
      }
    })().catch((failure: unknown) => failure);
    expect(values).toBe(4096);
    expect(error).toMatchObject({ code: RpcCode.RESOURCE_EXHAUSTED, message: expect.stringContaining('engine sent more than 4096 events in one read') });
  });

  it('fails with what onEvent throws, and closes the body', async () => {
    const source = body(['data: one\n\ndata: bad\n\ndata: three\n\n'], false);
    const error = await read(relaySse(source, relay())).catch((failure: unknown) => failure);
    expect(error).toMatchObject({ code: RpcCode.INTERNAL, message: expect.stringContaining('a bad event') });
    expect(source.destroyed).toBe(true);
  });

  it('fails with onBroken when the body breaks before its end', async () => {
    const source = body(['data: one\n\n'], false);
    const stream = relaySse(source, relay());
    expect(await stream.next()).toEqual({ done: false, value: 'one' });
    source.destroy(new Error('ECONNRESET'));
    await expect(stream.next()).rejects.toMatchObject({ code: RpcCode.UNAVAILABLE, message: expect.stringContaining('broke: ECONNRESET') });
  });

  it(`fails with INTERNAL when one event grows past ${MAX_SSE_EVENT_CHARS} characters, and closes the body`, async () => {
    const source = new PassThrough();
    const line = `data: ${'x'.repeat(64 * 1024)}\n`;
    const stream = relaySse(source, relay());
    // Writes until the relay gives up: the event never ends.
    for (let i = 0; i < 64 && !source.destroyed; i++) {
      if (!source.write(line)) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await expect(stream.next()).rejects.toMatchObject({
      code: RpcCode.INTERNAL,
      message: expect.stringContaining(`SSE event over ${MAX_SSE_EVENT_CHARS} characters`),
    });
    expect(source.destroyed).toBe(true);
  });
});

describe('relaySse with a larger first event (the prompt token ids)', () => {
  it('takes a first event up to maxFirstEventChars, and holds every later event to the usual limit', async () => {
    const big = 'y'.repeat(2 * MAX_SSE_EVENT_CHARS);
    const accepted = relaySse(body([`data: ${big}\n\n`, 'data: small\n\n', 'data: [DONE]\n\n']), { ...relay(), maxFirstEventChars: 4 * MAX_SSE_EVENT_CHARS });
    const { values } = await read(accepted);
    expect(values.map((value) => value.length)).toEqual([big.length, 5]);

    const source = body(['data: first\n\n', `data: ${big}\n\n`, 'data: [DONE]\n\n']);
    const refused = relaySse(source, { ...relay(), maxFirstEventChars: 4 * MAX_SSE_EVENT_CHARS });
    await expect(read(refused)).rejects.toMatchObject({
      code: RpcCode.INTERNAL,
      message: expect.stringContaining(`SSE event over ${MAX_SSE_EVENT_CHARS} characters`),
    });
    expect(source.destroyed).toBe(true);
  });
});

describe('relaySse and the answer budget', () => {
  it('charges the unfinished event of each stream to the budget: a stream that would pass it fails RESOURCE_EXHAUSTED and is closed; every byte comes back', async () => {
    const budget = new AnswerBudget(1024 * 1024);
    const unfinished = `data: ${'x'.repeat(600 * 1024)}`;
    const first = body([unfinished], false);
    const firstStream = relaySse(first, { ...relay(), budget, what: 'POST /a' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(budget.used).toBeGreaterThan(600 * 1024);
    const second = body([unfinished], false);
    const error = await read(relaySse(second, { ...relay(), budget, what: 'POST /b' })).catch((failure: unknown) => failure);
    expect(error).toMatchObject({
      code: RpcCode.RESOURCE_EXHAUSTED,
      message: expect.stringContaining("engine answer to POST /b needs 614406 bytes held at once, more than is free of the worker's 1048576-byte budget"),
    });
    expect(second.destroyed).toBe(true);
    // The first event ends: its bytes come back; the stream's end leaves nothing held.
    first.end('\n\ndata: [DONE]\n\n');
    expect((await read(firstStream)).values).toHaveLength(1);
    expect(budget.used).toBe(0);
  });

  it('gives back what an unfinished event held when the reader leaves', async () => {
    const budget = new AnswerBudget(1024 * 1024);
    const source = body([`data: ${'x'.repeat(1000)}`], false);
    const stream = relaySse(source, { ...relay(), budget });
    await new Promise((resolve) => setImmediate(resolve));
    expect(budget.used).toBe(1006);
    await stream[Symbol.asyncIterator]().return?.();
    expect(budget.used).toBe(0);
    expect(source.destroyed).toBe(true);
  });
});

describe('readJson', () => {
  it('parses a body and names the request when it is not JSON', async () => {
    expect(await readJson(body(['{"data":', '[1,2]}']) as unknown as IncomingMessage, 'GET /x', new AnswerBudget())).toEqual({ data: [1, 2] });
    await expect(readJson(body(['<html>']) as unknown as IncomingMessage, 'GET /x', new AnswerBudget())).rejects.toMatchObject({
      code: RpcCode.INTERNAL,
      message: expect.stringContaining('engine answered GET /x with a body that is not JSON: "<html>"'),
    });
  });

  it('readCapped stops at its limit with the error it is given, and closes the body', async () => {
    const source = body(['a'.repeat(40), 'b'.repeat(40), 'c'.repeat(40)], false);
    await expect(readCapped(source, 100, () => new Error('too large'))).rejects.toThrow('too large');
    expect(source.destroyed).toBe(true);
    expect(await readCapped(body(['ab', 'c']), 3, () => new Error('too large'))).toBe('abc');
  });
});
