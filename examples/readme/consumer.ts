// examples/readme/consumer.ts
import { createClient } from 'shuttle-rpc';
import { Greeter } from './greeter.js';

const client = await createClient({ timeoutMs: 5000 }); // finds providers in this host's registry
const greeter = client.proxy(Greeter, { version: '1.0.0' }); // typed by GreeterApi, kinds from Greeter

console.log(await greeter.hello('ada', { metadata: { tenant: 'a' }, signal: AbortSignal.timeout(1000) }));
const countdown = greeter.countdown(3);
for await (const n of countdown) console.log(n);
console.log(await countdown.trailer);
await client.close();
