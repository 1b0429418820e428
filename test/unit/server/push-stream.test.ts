import { describe, expect, it } from 'vitest';
import { PushStream } from '../../../src/server/push-stream.js';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { collect } from '../../helpers/collect.js';

describe('PushStream', () => {
  it('delivers values pushed before and after the reader asks, in order, then the end value', async () => {
    const stream = new PushStream<number, { count: number }>();
    stream.push(1);
    stream.push(2);
    const reading = collect(stream);
    await Promise.resolve();
    stream.push(3);
    setTimeout(() => {
      stream.push(4);
      stream.end({ count: 4 });
    }, 5);
    expect(await reading).toEqual([1, 2, 3, 4]);
    const iterator = stream[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ value: { count: 4 }, done: true });
  });

  it('fails after the values pushed before the error', async () => {
    const stream = new PushStream<string>();
    stream.push('a');
    stream.fail(new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'out of KV cache'));
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const value of stream) seen.push(value);
      })(),
    ).rejects.toThrow('out of KV cache');
    expect(seen).toEqual(['a']);
    expect(stream.closed).toBe(true);
  });

  it('tells the producer once when the reader leaves, and drops what it pushes after', async () => {
    const stream = new PushStream<number>();
    let closes = 0;
    stream.onClose(() => closes++);
    for (let i = 0; i < 5; i++) stream.push(i);
    for await (const value of stream) if (value === 1) break;
    expect(closes).toBe(1);
    expect(stream.closed).toBe(true);
    expect(stream.push(9)).toBe(false);
    expect(stream.buffered).toBe(0);
    let late = 0;
    stream.onClose(() => late++);
    expect(late).toBe(1);
  });

  it('answers false at the high-water mark and wakes a waiting producer as the reader catches up', async () => {
    const stream = new PushStream<number>({ highWaterMark: 3 });
    expect([stream.push(0), stream.push(1), stream.push(2)]).toEqual([true, true, false]);
    let woken = false;
    const ready = stream.ready().then(() => (woken = true));
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    await Promise.resolve();
    expect(woken).toBe(true);
    await ready;
    expect(stream.buffered).toBe(2);
  });

  it('fails with RESOURCE_EXHAUSTED, not unbounded memory, when the producer ignores backpressure', async () => {
    const stream = new PushStream<number>({ highWaterMark: 2, maxBuffered: 10 });
    let accepted = 0;
    for (let i = 0; i < 1000; i++) if (stream.push(i) || !stream.closed) accepted++;
    expect(stream.closed).toBe(true);
    expect(stream.buffered).toBe(0);
    expect(accepted).toBeLessThanOrEqual(11);
    await expect(stream[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: RpcCode.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(/maxBuffered 10/),
    });
  });

  it('refuses a value pushed after the end, and bad options, with clear errors', () => {
    const stream = new PushStream<number>();
    stream.end();
    expect(() => stream.push(1)).toThrow(/pushed into a stream after its end\(\) or fail\(\)/);
    expect(() => new PushStream({ highWaterMark: 0 })).toThrow(/highWaterMark/);
    expect(() => new PushStream({ highWaterMark: 10, maxBuffered: 5 })).toThrow(/maxBuffered/);
    expect(() => new PushStream({ high: 1 } as never)).toThrow(/unknown option push stream options\.high/);
  });
});
