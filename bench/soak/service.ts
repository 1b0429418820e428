import { type CallContext, type RpcCode, RpcError, RpcMethod, RpcService } from 'shuttle-rpc';

/** What the soak's consumers see of {@link SoakService}. */
export interface SoakApi {
  echo(value: unknown): Promise<unknown>;
  fail(code: number): Promise<never>;
  sleep(ms: number): Promise<boolean>;
  count(request: { n: number; delayMs: number }): AsyncGenerator<{ i: number }, { count: number }>;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** The soak's provider methods: an echo, a failure of any code, a sleep that honours cancellation, and a stream. */
@RpcService({ name: 'soak.Churn', version: '1.0.0' })
export class SoakService {
  @RpcMethod({ idempotent: true })
  async echo(value: unknown): Promise<unknown> {
    return value;
  }

  @RpcMethod()
  async fail(code: number): Promise<never> {
    throw new RpcError(code as RpcCode, `failing with ${code} on purpose`);
  }

  @RpcMethod({ idempotent: true })
  async sleep(ms: number, ctx: CallContext): Promise<boolean> {
    await sleep(ms, ctx.signal);
    return ctx.signal.aborted;
  }

  @RpcMethod({ stream: true })
  async *count(request: { n: number; delayMs: number }, ctx: CallContext): AsyncGenerator<{ i: number }, { count: number }> {
    for (let i = 0; i < request.n; i++) {
      if (ctx.signal.aborted) return { count: i };
      yield { i };
      await sleep(request.delayMs, ctx.signal);
    }
    return { count: request.n };
  }
}
