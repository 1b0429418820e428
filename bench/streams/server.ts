import { PushStream, RpcMethod, RpcService, createServer, type CallContext } from 'shuttle-rpc';

/**
 * Server process of bench:streams: `node server.js CADENCE_MS [push|generator]`. Serves
 * `bench.Steps.generate`, whose streams are fed the way an inference engine feeds them: one
 * engine step every CADENCE_MS emits one token for every running stream at once (continuous
 * batching), not one timer per stream. `push` (the default) returns a PushStream the step
 * pushes into; `generator` writes the same method as an async generator that each step wakes.
 * Prints {"port": n}, then {"cpu": userMs + systemMs} every second. Exits on SIGTERM.
 */
const cadenceMs = Number(process.argv[2] ?? 40);
const handler = process.argv[3] ?? 'push';
if (handler !== 'push' && handler !== 'generator') throw new Error(`handler must be push or generator, got ${handler}`);

/** One running stream, as the engine step sees it. */
interface Running {
  /** Emits this step's token. */
  step(): void;
}

const running = new Set<Running>();
setInterval(() => {
  for (const stream of running) stream.step();
}, cadenceMs);

@RpcService({ name: 'bench.Steps' })
class Steps {
  @RpcMethod({ stream: true })
  generate(request: { tokens: number }, ctx: CallContext): AsyncIterable<string> {
    return handler === 'push' ? pushed(request.tokens) : generated(request.tokens, ctx);
  }
}

/** The engine pushes a token into the stream at each step; the stream tells it when it is over. */
function pushed(tokens: number): PushStream<string> {
  const stream = new PushStream<string>();
  let sent = 0;
  const entry: Running = {
    step: () => {
      stream.push('tok');
      if (++sent >= tokens) stream.end();
    },
  };
  running.add(entry);
  stream.onClose(() => running.delete(entry));
  return stream;
}

/** An async generator that each step wakes to yield one token. */
async function* generated(tokens: number, ctx: CallContext): AsyncGenerator<string> {
  let wake: (() => void) | undefined;
  const entry: Running = {
    step: () => {
      const resume = wake;
      wake = undefined;
      resume?.();
    },
  };
  running.add(entry);
  const onAbort = (): void => entry.step();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (let i = 0; i < tokens && !ctx.signal.aborted; i++) {
      await new Promise<void>((resolve) => (wake = resolve));
      yield 'tok';
    }
  } finally {
    running.delete(entry);
    ctx.signal.removeEventListener('abort', onAbort);
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
