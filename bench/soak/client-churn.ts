import { createClient } from 'shuttle-rpc';
import { line, sample } from './sample.js';
import type { SoakApi } from './service.js';

/*
 * Creates a client, makes a few calls and closes it, over and over for SOAK_SECONDS, sampling
 * every SOAK_SAMPLE_MS: after each close nothing of the client should stay (timers, sockets,
 * registry watches, listeners on process).
 */
const registry = process.env['SOAK_REGISTRY']!;
const seconds = Number(process.env['SOAK_SECONDS'] ?? 60);
const every = Number(process.env['SOAK_SAMPLE_MS'] ?? 5000);
console.log(JSON.stringify({ ready: true }));
const listeners = (): number =>
  ['SIGTERM', 'SIGINT', 'exit', 'beforeExit', 'uncaughtException', 'unhandledRejection', 'warning'].reduce((n, e) => n + process.listenerCount(e), 0);
const end = performance.now() + seconds * 1000;
let next = 0;
let clients = 0;
let failed = 0;
while (performance.now() < end) {
  const client = await createClient({
    registry,
    config: false,
    log: false,
    timeoutMs: 2000,
    transport: process.env['SOAK_TRANSPORT'] === 'grpc' ? 'grpc' : 'tcp',
  });
  const api = client.proxy<SoakApi>('soak.Churn', { version: '1.0.0', waitForReady: true });
  for (let i = 0; i < 3; i++) {
    try {
      await api.echo(i);
    } catch {
      failed++;
    }
  }
  await client.close();
  clients++;
  if (performance.now() >= next) {
    next = performance.now() + every;
    console.log(line('client-churn', sample({ clients, failed, processListeners: listeners() })));
  }
}
console.log(line('client-churn', sample({ clients, failed, processListeners: listeners() })));
