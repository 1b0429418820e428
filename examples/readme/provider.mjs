// examples/readme/provider.mjs: the same provider in plain JavaScript, no build, no decorators
import { createServer, defineService, RpcMethod, RpcService, serverStream, unary } from 'shuttle-rpc';

const Greeter = defineService('demo.Greeter', { hello: unary, countdown: serverStream });

class GreeterImpl {
  async hello(name, ctx) {
    return `hello, ${name} (tenant ${ctx.metadata['tenant']})`;
  }

  async *countdown(from, ctx) {
    for (let i = from; i > 0 && !ctx.signal.aborted; i--) yield i;
    return 'liftoff';
  }
}
// A decorator is a function: called on the class (and on a method's descriptor) it records the same.
RpcMethod({ idempotent: true })(GreeterImpl.prototype, 'hello', Object.getOwnPropertyDescriptor(GreeterImpl.prototype, 'hello'));
RpcService(Greeter, { version: '1.0.0' })(GreeterImpl);

const server = await createServer({ services: [new GreeterImpl()] });
console.log(`serving ${server.url}`);
process.once('SIGTERM', () => void server.close());
