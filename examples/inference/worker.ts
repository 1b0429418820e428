import { parseArgs } from 'node:util';
import { createServer } from 'shuttle-rpc';
import { SimEngine, realClock, type SchedulingPolicy } from 'shuttle-rpc/testing';
import { LlmWorker } from './llm.js';

/*
 * A simulated GPU worker: `node worker.js --name a10-1 --gpu A10 --slots 8 --kv 200000`
 * (`--scheduling priority` to run calls by their priority, preempting lower ones).
 * Exports inference.LLM on the registry (SHUTTLE_REGISTRY, or the embedded default), with its
 * model, GPU, batch slots and KV capacity in the record and the engine's live load on the load
 * channel. Prints {"ready": url} and drains gracefully on SIGTERM.
 */
const { values } = parseArgs({
  options: {
    name: { type: 'string', default: `worker-${process.pid}` },
    gpu: { type: 'string', default: 'H100' },
    slots: { type: 'string', default: '8' },
    kv: { type: 'string', default: '200000' },
    model: { type: 'string', default: 'llama-3-8b' },
    scheduling: { type: 'string', default: 'fcfs' },
  },
});
const slots = Number(values.slots);
const kvCapacityTokens = Number(values.kv);
const engine = new SimEngine({ slots, kvCapacityTokens, scheduling: values.scheduling as SchedulingPolicy }, realClock);
const server = await createServer({
  services: [new LlmWorker(engine, values.name!)],
  // Capacity as the latency-predicting balancer (`slo`) reads it: slots, prefill and decode speed, KV size.
  metadata: {
    model: values.model,
    gpu: values.gpu,
    slots,
    kvCapacityTokens,
    prefillTokensPerSecond: engine.config.prefillTokensPerSecond,
    prefillOverheadMs: engine.config.prefillOverheadMs,
    decodeBaseMs: engine.config.decodeBaseMs,
    decodePerSequenceMs: engine.config.decodePerRunningMs,
    name: values.name,
  },
  // Running plus queued at most 4x the batch: beyond that, shed (RESOURCE_EXHAUSTED) so the
  // consumer can go elsewhere instead of queueing behind a wall.
  maxConcurrentCalls: slots * 4,
  load: () => engine.load(),
  loadIntervalMs: 250,
  shutdownOnSignals: true,
});
console.log(JSON.stringify({ ready: server.url, name: values.name }));
