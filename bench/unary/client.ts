import { SYSTEMS } from './systems.js';

/**
 * Client process of bench:unary: `node client.js SYSTEM PORT PAYLOAD_BYTES CONCURRENCY MS`.
 * Warms up, then keeps CONCURRENCY calls in flight for MS milliseconds (and at most
 * MAX_CALLS calls), and prints {"requests", "seconds", "p50", "p99"} (latencies in µs).
 */
const [name = '', portText = '', bytesText = '', concurrencyText = '', msText = ''] = process.argv.slice(2);
const system = SYSTEMS[name];
if (system === undefined) throw new Error(`unknown system ${name}`);
const port = Number(portText);
const payload = new Uint8Array(Number(bytesText)).fill(7);
const concurrency = Number(concurrencyText);
const durationMs = Number(msText);
const MAX_CALLS = 5_000_000;

const client = await system.connect(port);
await run(Math.min(500, durationMs / 4), 1_000_000);
const latencies = new Float64Array(MAX_CALLS);
const { requests, seconds } = await run(durationMs, MAX_CALLS, latencies);
const sorted = latencies.subarray(0, requests).sort();
const percentile = (p: number): number => sorted[Math.min(requests - 1, Math.floor(requests * p))]! / 1000;
console.log(JSON.stringify({ requests, seconds, p50: percentile(0.5), p99: percentile(0.99) }));
await client.close();
process.exit(0);

async function run(ms: number, maxCalls: number, record?: Float64Array): Promise<{ requests: number; seconds: number }> {
  let done = 0;
  let started = 0;
  const start = process.hrtime.bigint();
  const stopAt = start + BigInt(Math.round(ms * 1e6));
  const worker = async (): Promise<void> => {
    while (started < maxCalls) {
      const before = process.hrtime.bigint();
      if (before >= stopAt) return;
      started++;
      await client.call(payload);
      const after = process.hrtime.bigint();
      if (record !== undefined) record[done] = Number(after - before);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { requests: done, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}
