import { createClient, type RpcError } from 'shuttle-rpc';
import type { GreeterApi } from './greeter.js';

/**
 * Calls the Greeter providers it finds in the registry: the embedded default (the file
 * registry of this host) unless SHUTTLE_REGISTRY or a shuttle.config.json says otherwise, or a
 * provider URL (shuttle://host:port) is given as the first argument.
 */
const client = await createClient({ timeoutMs: 5000, ...(process.argv[2] === undefined ? {} : { registry: process.argv[2] }) });
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
const answers = await Promise.all(Array.from({ length: calls }, (_, i) => greeter.hello(`caller ${i}`)));
const perWorker = new Map<string, number>();
for (const answer of answers) {
  const worker = /from worker (\d+)/.exec(answer)?.[1] ?? '?';
  perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1);
}
console.log(`${calls} concurrent calls in ${(performance.now() - started).toFixed(0)} ms, one multiplexed connection per provider`);
for (const [worker, count] of perWorker) console.log(`  worker ${worker}: ${count} calls`);
await client.close();
