import { describe, expect, it } from 'vitest';
import { RpcCode, RpcError } from '../../../src/errors/errors.js';
import { ClientStream } from '../../../src/transport/client-stream.js';

const stream = (): ClientStream<string> =>
  new ClientStream<string>(
    () => {},
    () => {},
  );
const settled = async (promise: Promise<unknown>): Promise<string> => {
  const state = await Promise.race([
    promise.then(
      () => 'resolved',
      () => 'rejected',
    ),
    new Promise((resolve) => setTimeout(() => resolve('pending'), 10)),
  ]);
  return state as string;
};

describe('ClientStream.firstEvent (when a stream counts as opened)', () => {
  it('waits for the first chunk, and resolves at once when one came before it was asked', async () => {
    const waiting = stream();
    const first = waiting.firstEvent();
    expect(await settled(first)).toBe('pending');
    waiting.push('a', 1);
    expect(await settled(first)).toBe('resolved');

    const early = stream();
    early.push('a', 1);
    expect(await settled(early.firstEvent())).toBe('resolved');
  });

  it('rejects with the error of a stream that failed before any chunk, also when asked after', async () => {
    const refused = new RpcError(RpcCode.RESOURCE_EXHAUSTED, 'shed', { details: { neverSent: true } });
    const before = stream();
    const first = before.firstEvent();
    before.fail(refused);
    await expect(first).rejects.toBe(refused);
    const after = stream();
    after.fail(refused);
    await expect(after.firstEvent()).rejects.toBe(refused);
  });

  it('resolves for a stream that ended empty, and for one that failed after a chunk (the reader gets that error)', async () => {
    const empty = stream();
    empty.end({ usage: 0 });
    expect(await settled(empty.firstEvent())).toBe('resolved');
    const late = stream();
    late.push('a', 1);
    late.fail(new RpcError(RpcCode.UNAVAILABLE, 'lost'));
    expect(await settled(late.firstEvent())).toBe('resolved');
    const chunks: string[] = [];
    await expect(
      (async () => {
        for await (const chunk of late) chunks.push(chunk);
      })(),
    ).rejects.toThrow(/lost/);
    expect(chunks).toEqual(['a']);
  });
});
