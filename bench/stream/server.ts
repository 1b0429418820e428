import { SYSTEMS } from './systems.js';

/**
 * Server process of bench:stream: `node server.js SYSTEM`. Prints {"port": n}, then one line
 * {"abort": id, "at": ms} whenever a cancel reaches a handler (ms: performance.timeOrigin +
 * performance.now(), comparable across processes of one machine). Exits on SIGTERM.
 */
const name = process.argv[2] ?? '';
const system = SYSTEMS[name];
if (system === undefined) throw new Error(`unknown system ${name}; known: ${Object.keys(SYSTEMS).join(', ')}`);
const server = await system.serve((id) => {
  process.stdout.write(`${JSON.stringify({ abort: id, at: performance.timeOrigin + performance.now() })}\n`);
});
console.log(JSON.stringify({ port: server.port }));
process.once('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
