import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcMethod, RpcService, type CallContext } from 'shuttle-rpc';
import { startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { rejection, waitUntil } from '../helpers/wait.js';

/*
 * A provider that closes while calls outlive its drain time: each caller is told why its call
 * ended (the provider shut down, its drain time ran out), not just that a connection dropped,
 * and each handler's signal fires.
 */
interface StuckApi {
  hang(): Promise<never>;
  ticks(): AsyncGenerator<number>;
}

@RpcService({ name: 'test.Stuck' })
class StuckService {
  readonly aborted: string[] = [];

  @RpcMethod()
  hang(_request: unknown, ctx: CallContext): Promise<never> {
    ctx.signal.addEventListener('abort', () => this.aborted.push('hang'));
    return new Promise<never>(() => {});
  }

  @RpcMethod({ stream: true })
  async *ticks(_request: unknown, ctx: CallContext): AsyncGenerator<number> {
    try {
      for (let i = 0; ; i++) {
        yield i;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      if (ctx.signal.aborted) this.aborted.push('ticks');
    }
  }
}

let pair: TestPair | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

describe('calls that outlive the drain time of a closing provider', () => {
  it('fail UNAVAILABLE naming the method and the drain time, and their handlers are aborted', async () => {
    const service = new StuckService();
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    pair = await startTestPair([service], { server: { drainTimeoutMs: 300, log: { level: 'info', stream } } });
    const stuck = pair.client.proxy<StuckApi>('test.Stuck');
    const hanging = rejection(stuck.hang());
    let received = 0;
    const streaming = (async () => {
      for await (const _ of stuck.ticks()) received++;
    })();
    const streamEnd = rejection(streaming);
    while (received < 3) await new Promise((resolve) => setTimeout(resolve, 10));

    const started = Date.now();
    await pair.server.close();
    expect(Date.now() - started).toBeLessThan(2000);
    const unary = await hanging;
    expect(unary.code).toBe(RpcCode.UNAVAILABLE);
    expect(unary.message).toBe(
      '[unavailable] test.Stuck.hang was cut off: the provider shut down and its drain time (drainTimeoutMs 300 ms) ran out before the call finished',
    );
    const streamError = await streamEnd;
    expect(streamError.code).toBe(RpcCode.UNAVAILABLE);
    expect(streamError.message).toBe(
      '[unavailable] test.Stuck.ticks was cut off: the provider shut down and its drain time (drainTimeoutMs 300 ms) ran out before the call finished',
    );
    // The generator's finally runs once its pending step is over.
    await waitUntil(() => service.aborted.length === 2, 'both handlers to see the abort', 2000);
    expect(service.aborted.sort()).toEqual(['hang', 'ticks']);
    // The operator is told what the stop cut: one line, at warn.
    const drained = lines.map((line) => JSON.parse(line) as { level: number; msg: string; cut?: number }).filter((line) => /^drained/.test(line.msg));
    expect(drained).toHaveLength(1);
    expect(drained[0]!.level).toBe(40);
    expect(drained[0]!.msg).toMatch(
      /^drained in \d+ ms: 2 of the 2 calls running at the stop were still running at drainTimeoutMs \(300 ms\) and were cut off; their callers got UNAVAILABLE$/,
    );
  });
});
