// examples/readme/greeter.ts: the contract, imported by both sides
import { defineService, serverStream, unary } from 'shuttle-rpc';

export interface GreeterApi {
  hello(name: string): Promise<string>;
  countdown(from: number): AsyncGenerator<number, string>;
}

export const Greeter = defineService<GreeterApi>('demo.Greeter', { hello: unary, countdown: serverStream });
