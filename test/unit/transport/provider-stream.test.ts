import { describe, expect, it } from 'vitest';
import { createMsgpackSerializer } from '../../../src/serializer/msgpack.js';
import type { Serializer } from '../../../src/serializer/serializer.js';
import { LazyAbort } from '../../../src/transport/lazy-abort.js';
import { StreamCredit, pumpStream } from '../../../src/transport/tcp/provider-stream.js';

const serializer = createMsgpackSerializer({}) as Serializer;
const target = { service: 'svc', method: 'gen', kind: 'response' } as const;

describe('StreamCredit', () => {
  it('never holds more credit than its window, whatever a consumer grants', () => {
    const credit = new StreamCredit(65_535);
    credit.take(1000);
    credit.grant(0xffffffff);
    credit.grant(0xffffffff);
    expect(credit.available).toBe(65_535);
  });
});

describe('pumpStream', () => {
  it('waits for the socket as well as for credit: nothing is written while the writer is over budget', async () => {
    const written: Buffer[] = [];
    let over = true;
    let drain!: () => void;
    const writer = {
      get overBudget() {
        return over;
      },
      drained: () => new Promise<void>((resolve) => (drain = resolve)),
    };
    async function* numbers(): AsyncGenerator<number> {
      for (let i = 0; i < 5; i++) yield i;
    }
    const done = pumpStream({
      requestId: 1,
      iterable: numbers(),
      abort: new LazyAbort(undefined),
      credit: new StreamCredit(1 << 20),
      serializer,
      target,
      write: (frame) => written.push(frame),
      writer,
      flush: () => {},
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toHaveLength(0);
    over = false;
    drain();
    await done;
    // Five chunks and the end.
    expect(written).toHaveLength(6);
  });

  it('an abort wakes a pump that waits for the socket, and the generator is closed', async () => {
    let closed = false;
    async function* forever(): AsyncGenerator<number> {
      try {
        for (;;) yield 1;
      } finally {
        closed = true;
      }
    }
    const abort = new LazyAbort(undefined);
    const credit = new StreamCredit(1 << 20);
    const done = pumpStream({
      requestId: 1,
      iterable: forever(),
      abort,
      credit,
      serializer,
      target,
      write: () => {},
      writer: { overBudget: true, drained: () => new Promise<void>(() => {}) },
      flush: () => {},
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    abort.abort(new Error('cancelled'));
    credit.release();
    await done;
    expect(closed).toBe(true);
  });
});
