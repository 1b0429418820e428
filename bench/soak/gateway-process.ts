import { startGateway } from 'shuttle-rpc/gateway';
import { ShuttleMetrics } from 'shuttle-rpc';
import { line, sample } from './sample.js';

/*
 * The gateway soak's gateway: prefix-affinity over the workers in SOAK_REGISTRY, admission with
 * a tokens-per-minute default for every tenant, metrics; prints {"ready": url}, then a sample
 * line every SOAK_SAMPLE_MS with the metrics' series count.
 */
const metrics = new ShuttleMetrics();
const gateway = await startGateway({
  port: 0,
  client: { registry: process.env['SOAK_REGISTRY']!, config: false, log: false },
  metrics,
  log: false,
  admission: { tenantDefaults: { tokensPerMinute: 60_000 }, apiKeyTenants: { 'key-gold': 'gold', 'key-silver': 'silver' } },
});
console.log(JSON.stringify({ ready: gateway.url }));
const timer = setInterval(
  async () => {
    const series = (await metrics.registry.getMetricsAsJSON()).reduce((total, metric) => total + metric.values.length, 0);
    console.log(line('gateway', sample({ series, workers: gateway.client.providers().length })));
  },
  Number(process.env['SOAK_SAMPLE_MS'] ?? 5000),
);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void gateway.close().then(() => process.exit(0));
});
