import { RpcMethod, RpcService, createServer, type CallContext } from 'shuttle-rpc';

/**
 * Server process of bench:streams: `node server.js CADENCE_MS`. Serves `bench.Steps.generate`,
 * whose streams are fed the way an inference engine feeds them: one engine step every
 * CADENCE_MS emits one token for every running stream at once (continuous batching), not one
 * timer per stream. Prints {"port": n}, then {"cpu": userMs + systemMs} every second. Exits on
 * SIGTERM.
 */
const cadenceMs = Number(process.argv[2] ?? 40);

/** One running stream: wakes its generator at each step. */
interface Running {
  wake: (() => void) | undefined;
}

const running = new Set<Running>();
setInterval(() => {
  for (const stream of running) {
    const wake = stream.wake;
    stream.wake = undefined;
    wake?.();
  }
}, cadenceMs);

@RpcService({ name: 'bench.Steps' })
class Steps {
  @RpcMethod({ stream: true })
  async *generate(request: { tokens: number }, ctx: CallContext): AsyncGenerator<string> {
    const stream: Running = { wake: undefined };
    running.add(stream);
    const onAbort = (): void => stream.wake?.();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (let i = 0; i < request.tokens && !ctx.signal.aborted; i++) {
        await new Promise<void>((resolve) => (stream.wake = resolve));
        yield 'tok';
      }
    } finally {
      running.delete(stream);
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }
}

const server = await createServer({ services: [new Steps()], registry: false, config: false });
console.log(JSON.stringify({ port: server.port }));
const started = process.cpuUsage();
setInterval(() => {
  const used = process.cpuUsage(started);
  console.log(JSON.stringify({ cpu: (used.user + used.system) / 1000 }));
}, 1000).unref();
process.once('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
