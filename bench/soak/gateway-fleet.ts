import { startEngineWorker } from 'shuttle-rpc/engine';
import { startFakeEngine } from 'shuttle-rpc/testing';
import { line, sample } from './sample.js';

/*
 * The gateway soak's fleet: a fake OpenAI engine serving two models and two engine workers in
 * front of it, registered in SOAK_REGISTRY; prints {"ready": true}, then a sample line every
 * SOAK_SAMPLE_MS.
 */
const registry = process.env['SOAK_REGISTRY']!;
const engine = await startFakeEngine({ models: ['m0', 'm1'], tokens: 20, tokenDelayMs: 2 });
const workers = await Promise.all(
  ['w0', 'w1'].map((name) =>
    startEngineWorker({ url: engine.url, name, slots: 8, metricsUrl: false, server: { registry, host: '127.0.0.1', port: 0, log: false } }),
  ),
);
console.log(JSON.stringify({ ready: true }));
// The fake engine keeps every request it was sent (for tests to look at): let go of them at each
// sample, so what is measured is the workers'.
let requests = 0;
const timer = setInterval(
  () => {
    requests += engine.requests.length;
    engine.requests.length = 0;
    console.log(line('fleet', sample({ engineRequests: requests })));
  },
  Number(process.env['SOAK_SAMPLE_MS'] ?? 5000),
);
process.once('SIGTERM', () => {
  clearInterval(timer);
  void Promise.all(workers.map((worker) => worker.close()))
    .then(() => engine.close())
    .then(() => process.exit(0));
});
