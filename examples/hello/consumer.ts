import { createClient, RpcError } from 'shuttle-rpc';
import type { GreeterApi } from './greeter.js';

/** Calls a Greeter provider at the url given as the first argument. */
const url = process.argv[2];
if (url === undefined) {
  console.error('usage: node consumer.js shuttle://host:port');
  process.exit(2);
}
const client = await createClient({ registry: url, timeoutMs: 5000 });
const greeter = client.proxy<GreeterApi>('demo.Greeter', { version: '1.0.0' });

console.log(await greeter.hello('shuttle'));
const vector = await greeter.embed({ text: 'the quick brown fox', dimensions: 4 });
console.log(`embedding: Float32Array [${Array.from(vector, (x) => x.toFixed(3)).join(', ')}]`);

try {
  await greeter.hello('');
} catch (error) {
  console.log(`bad input is refused: ${(error as RpcError).message}`);
}
try {
  await greeter.slowEcho({ text: 'late', delayMs: 2000 }, { timeoutMs: 200 });
} catch (error) {
  console.log(`deadline enforced: ${(error as RpcError).message}`);
}

const started = performance.now();
const calls = 2000;
await Promise.all(Array.from({ length: calls }, (_, i) => greeter.hello(`caller ${i}`)));
console.log(`${calls} concurrent calls in ${(performance.now() - started).toFixed(0)} ms over one multiplexed connection`);
await client.close();
