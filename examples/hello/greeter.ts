import { RpcCode, RpcError, RpcMethod, RpcService, type CallContext } from 'shuttle-rpc';

/** The request of {@link Greeter.embed}. */
export interface EmbedRequest {
  text: string;
  dimensions: number;
}

/** What a consumer sees of the greeter: the proxy type is derived from this interface. */
export interface GreeterApi {
  hello(name: string): Promise<string>;
  embed(request: EmbedRequest): Promise<Float32Array>;
  slowEcho(request: { text: string; delayMs: number }): Promise<string>;
}

/**
 * A small provider used by the README's main command: a greeting, a deterministic toy
 * embedding (a Float32Array, to show binary payloads), and a slow method that honours
 * cancellation and deadlines.
 */
@RpcService({ name: 'demo.Greeter', version: '1.0.0' })
export class Greeter implements GreeterApi {
  @RpcMethod({ idempotent: true })
  async hello(name: string): Promise<string> {
    if (typeof name !== 'string' || name.length === 0) {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, 'hello needs a non-empty name', { details: { field: 'name' } });
    }
    return `hello, ${name} (from worker ${process.pid})`;
  }

  @RpcMethod({ idempotent: true })
  async embed(request: EmbedRequest): Promise<Float32Array> {
    const vector = new Float32Array(request.dimensions);
    for (let i = 0; i < request.text.length; i++) vector[i % request.dimensions]! += request.text.charCodeAt(i) / 128;
    return vector;
  }

  @RpcMethod()
  async slowEcho(request: { text: string; delayMs: number }, ctx?: CallContext): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, request.delayMs);
      ctx?.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      });
    });
    return request.text;
  }
}
