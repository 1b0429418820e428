import { createServer, ShuttleMetrics } from 'shuttle-rpc';
import { line, sample } from './sample.js';
import { SoakService } from './service.js';

/*
 * A soak provider: serves soak.Churn on a fresh loopback port, registered in SOAK_REGISTRY,
 * prints {"ready": url} and then a sample line every SOAK_SAMPLE_MS; closes on SIGTERM.
 */
const metrics = new ShuttleMetrics();
const server = await createServer({
  registry: process.env['SOAK_REGISTRY']!,
  host: '127.0.0.1',
  port: 0,
  services: [new SoakService()],
  // SOAK_TRANSPORT=grpc: the provider serves grpc only.
  ...(process.env['SOAK_TRANSPORT'] === 'grpc' ? { transport: 'grpc' as const } : {}),
  filters: [{ type: 'metrics', options: { metrics } }],
  metadata: { model: 'soak', kvCapacityTokens: 100_000 },
  log: false,
});
metrics.watchServer(server as never);
console.log(JSON.stringify({ ready: server.url, pid: process.pid }));
const every = Number(process.env['SOAK_SAMPLE_MS'] ?? 5000);
const timer = setInterval(async () => {
  const series = (await metrics.registry.getMetricsAsJSON()).reduce((n, metric) => n + metric.values.length, 0);
  console.log(line('provider', sample({ series })));
}, every);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void server.close().then(() => process.exit(0));
});
