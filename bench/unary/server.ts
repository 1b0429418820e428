import { SYSTEMS } from './systems.js';

/** Server process of bench:unary: `node server.js SYSTEM`; prints {"port": n}, exits on SIGTERM. */
const name = process.argv[2] ?? '';
const system = SYSTEMS[name];
if (system === undefined) throw new Error(`unknown system ${name}; known: ${Object.keys(SYSTEMS).join(', ')}`);
const server = await system.serve();
console.log(JSON.stringify({ port: server.port }));
process.once('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
