// examples/readme/provider.ts
import { RpcMethod, RpcService, createServer, type CallContext } from 'shuttle-rpc';
import { Greeter } from './greeter.js';

@RpcService(Greeter, { version: '1.0.0' }) // the compiler checks the class against GreeterApi
class GreeterImpl {
  @RpcMethod({ idempotent: true }) // safe to retry on another provider
  async hello(name: string, ctx: CallContext): Promise<string> {
    return `hello, ${name} (tenant ${ctx.metadata['tenant']})`; // ctx: signal, deadline, metadata, peer
  }

  async *countdown(from: number, ctx: CallContext): AsyncGenerator<number, string> {
    for (let i = from; i > 0 && !ctx.signal.aborted; i--) yield i;
    return 'liftoff'; // the stream's trailer
  }
}

// Announces itself in this host's registry; `registry: 'etcd://…'` for a cluster.
const server = await createServer({ services: [new GreeterImpl()] });
console.log(`serving ${server.url}`);
process.once('SIGTERM', () => void server.close());
