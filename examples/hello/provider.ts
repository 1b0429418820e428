import { createServer } from 'shuttle-rpc';
import { Greeter } from './greeter.js';

/** Starts a Greeter provider; prints its url so the demo (or you) can point a consumer at it. */
const server = await createServer({
  services: [new Greeter()],
  port: Number(process.env['SHUTTLE_PORT'] ?? 0),
  metadata: { role: 'example' },
});
console.log(JSON.stringify({ ready: server.url }));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
