import { fileURLToPath } from 'node:url';
import { createClient, createServer } from 'shuttle-rpc';
import { Greeter, type GreeterApi } from '../hello/greeter.js';

/*
 * `npm run example:plugin`: three Greeter providers in two zones, and a consumer whose
 * shuttle.config.json loads the zone-affinity plugin and selects it as the load balancer.
 * Every call lands in the consumer's zone, us-east-1a, spread over its two providers.
 */
class CountingGreeter extends Greeter {
  served = 0;

  override async hello(name: string): Promise<string> {
    this.served++;
    return super.hello(name);
  }
}

const config = { file: fileURLToPath(new URL('../../../examples/plugin/shuttle.config.json', import.meta.url)), env: {} };
const zones = ['us-east-1a', 'us-east-1a', 'us-west-2b'];
const greeters = zones.map(() => new CountingGreeter());
const servers = await Promise.all(greeters.map((greeter, i) => createServer({ services: [greeter], metadata: { zone: zones[i] }, config })));
const client = await createClient({ config });
console.log(`consumer plugins: ${client.context.plugins.join(', ')}; consumer zone: us-east-1a`);

const greeter = client.proxy<GreeterApi>('demo.Greeter');
await Promise.all(Array.from({ length: 60 }, (_, i) => greeter.hello(`call ${i}`)));
servers.forEach((server, i) => console.log(`provider :${server.port} in ${zones[i]} served ${greeters[i]!.served} calls`));

await client.close();
await Promise.all(servers.map((server) => server.close()));
