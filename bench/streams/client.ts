import { setMaxListeners } from 'node:events';
import { createClient } from 'shuttle-rpc';

/**
 * Client process of bench:streams: `node client.js PORT STREAMS MS`. One consumer (one
 * connection, as a gateway has to a worker) opens STREAMS streams at once and reads them all
 * for MS milliseconds. Prints one JSON line: tokens received, the gaps between one stream's
 * tokens (p50, p99, max, in ms), and this process's CPU time.
 */
const [port, streams, ms] = process.argv.slice(2).map(Number) as [number, number, number];
const client = await createClient({ registry: `shuttle://127.0.0.1:${port}`, timeoutMs: ms + 60_000, config: false });
const steps = client.proxy<{ generate(request: { tokens: number }): AsyncIterable<string> }>('bench.Steps');
await client.ready();

/** Gaps in 0.1 ms buckets up to 10 s: millions of samples in a fixed array. */
const buckets = new Uint32Array(100_000);
let tokens = 0;
let measuring = false;
const failures: string[] = [];
const controller = new AbortController();
// One signal ends every stream: thousands of listeners on it are expected here.
setMaxListeners(0, controller.signal);

async function read(): Promise<void> {
  let last = 0;
  try {
    for await (const _ of steps.generate({ tokens: 1e9 }, { signal: controller.signal })) {
      const now = performance.now();
      if (measuring) {
        tokens++;
        if (last > 0) buckets[Math.min(buckets.length - 1, Math.round((now - last) * 10))]!++;
      }
      last = now;
    }
  } catch (error) {
    // Cancelled at the end; anything before that is a failure worth seeing.
    if (!controller.signal.aborted) failures.push((error as Error).message);
  }
}

// Open the streams as a gateway would, a batch per event-loop turn rather than all in one.
const readers: Promise<void>[] = [];
while (readers.length < streams) {
  for (let i = 0; i < 100 && readers.length < streams; i++) readers.push(read());
  await new Promise((resolve) => setImmediate(resolve));
}
// Let every stream open and reach its cadence before measuring.
await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 1000 + streams / 5)));
const cpuBefore = process.cpuUsage();
const started = performance.now();
measuring = true;
await new Promise((resolve) => setTimeout(resolve, ms));
measuring = false;
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
controller.abort();
await Promise.all(readers);

function percentile(q: number): number {
  let total = 0;
  for (const count of buckets) total += count;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= q * total) return i / 10;
  }
  return Number.NaN;
}
let max = 0;
for (let i = 0; i < buckets.length; i++) if (buckets[i]! > 0) max = i / 10;
if (failures.length > 0) process.stderr.write(`${failures.length} streams failed, the first: ${failures[0]}\n`);
console.log(
  JSON.stringify({
    tokens,
    seconds,
    failed: failures.length,
    gapP50: percentile(0.5),
    gapP99: percentile(0.99),
    gapMax: max,
    cpuMs: (cpu.user + cpu.system) / 1000,
  }),
);
await client.close();
