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

/**
 * Latencies in chunks of 64 Ki entries, allocated as calls complete. One array for MAX_CALLS
 * (40 MB, mostly unused) changed what it measured: with that much external memory in the
 * process, V8's minor GCs in a consumer making 70 k calls/s kept about 1 MB alive each and
 * paused every call in flight for 2.7 ms (shuttle's p99 at 32 in flight: 3.2 ms; with the
 * memory sized to the calls, 0.5 ms pauses and 1.7 ms).
 */
class LatencyRecord {
  static readonly CHUNK = 65_536;
  readonly #chunks: Float64Array[] = [];
  count = 0;

  push(value: number): void {
    const index = this.count % LatencyRecord.CHUNK;
    if (index === 0) this.#chunks.push(new Float64Array(LatencyRecord.CHUNK));
    this.#chunks[this.#chunks.length - 1]![index] = value;
    this.count++;
  }

  /** Every latency recorded, sorted. */
  sorted(): Float64Array {
    const all = new Float64Array(this.count);
    this.#chunks.forEach((chunk, index) =>
      all.set(chunk.subarray(0, Math.min(LatencyRecord.CHUNK, this.count - index * LatencyRecord.CHUNK)), index * LatencyRecord.CHUNK),
    );
    return all.sort();
  }
}

const client = await system.connect(port);
await run(Math.min(500, durationMs / 4), 1_000_000);
const latencies = new LatencyRecord();
const { requests, seconds } = await run(durationMs, MAX_CALLS, latencies);
const sorted = latencies.sorted();
const percentile = (p: number): number => sorted[Math.min(requests - 1, Math.floor(requests * p))]! / 1000;
console.log(JSON.stringify({ requests, seconds, p50: percentile(0.5), p99: percentile(0.99) }));
await client.close();
process.exit(0);

async function run(ms: number, maxCalls: number, record?: LatencyRecord): Promise<{ requests: number; seconds: number }> {
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
      record?.push(Number(after - before));
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { requests: done, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}
