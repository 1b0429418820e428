import { afterEach, describe, expect, it } from 'vitest';
import { RpcCode, RpcMethod, RpcService, type Proxied } from 'shuttle-rpc';
import { startTestPair, type TestPair } from 'shuttle-rpc/testing';
import { rejection } from '../helpers/wait.js';

/*
 * A value that refers to itself cannot be encoded: the error names the method, the payload and
 * the path of the reference, on the side that made the value, instead of the encoder's
 * "Maximum call stack size exceeded".
 */
interface LoopApi {
  echo(value: unknown): Promise<unknown>;
  loop(): Promise<unknown>;
}

@RpcService({ name: 'test.Loop' })
class LoopService {
  @RpcMethod()
  async echo(value: unknown): Promise<unknown> {
    return value;
  }

  @RpcMethod()
  async loop(): Promise<unknown> {
    const node: { name: string; children: unknown[] } = { name: 'root', children: [] };
    node.children.push({ parent: node });
    return node;
  }
}

let pair: TestPair | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

describe('a value that refers to itself', () => {
  it('as a request: INVALID_ARGUMENT naming the method and the path, before anything is sent', async () => {
    pair = await startTestPair([new LoopService()]);
    const loop: Proxied<LoopApi> = pair.client.proxy<LoopApi>('test.Loop');
    const request: Record<string, unknown> = { id: 1 };
    request['self'] = request;
    const error = await rejection(loop.echo(request));
    expect(error.code).toBe(RpcCode.INVALID_ARGUMENT);
    expect(error.message).toBe(
      '[invalid argument] cannot encode the request of test.Loop.echo as msgpack: request.self refers back to request (a circular reference; send a copy without it)',
    );
    expect(await loop.echo({ id: 2 })).toEqual({ id: 2 });
  });

  it('as a response: INTERNAL naming the method and the path', async () => {
    pair = await startTestPair([new LoopService()]);
    const error = await rejection(pair.client.proxy<LoopApi>('test.Loop').loop());
    expect(error.code).toBe(RpcCode.INTERNAL);
    expect(error.message).toBe(
      '[internal] cannot encode the response of test.Loop.loop as msgpack: response.children[0].parent refers back to response (a circular reference; send a copy without it)',
    );
  });
});
