import { SYSTEMS } from './systems.js';

/**
 * Server process of bench:stream: `node server.js SYSTEM`. Prints {"port": n}; on SIGTERM, one
 * line {"abort": id, "at": ms} for every cancel that reached a handler (ms: performance.timeOrigin +
 * performance.now(), comparable across processes of one machine). Exits on SIGTERM.
 */
const name = process.argv[2] ?? '';
const system = SYSTEMS[name];
if (system === undefined) throw new Error(`unknown system ${name}; known: ${Object.keys(SYSTEMS).join(', ')}`);
// Kept in memory until exit: a line written to the pipe per cancel would cost the event loop
// the measurement is timing.
const aborts: string[] = [];
const server = await system.serve((id) => {
  aborts.push(`${JSON.stringify({ abort: id, at: performance.timeOrigin + performance.now() })}\n`);
});
console.log(JSON.stringify({ port: server.port }));
process.once('SIGTERM', () => {
  void server.close().finally(() => {
    process.stdout.write(aborts.join(''), () => process.exit(0));
  });
});
