import { SYSTEMS, type BenchClient } from './systems.js';

/**
 * Client process of bench:stream: `node client.js SYSTEM PORT CONCURRENCY MODE LIMIT`.
 *
 * - MODE throughput: CONCURRENCY workers each open 1,000-chunk streams back to back for LIMIT
 *   ms; prints {"chunks", "seconds", "ttfc50", "ttfc99"} (time to first chunk in µs).
 * - MODE cancel: CONCURRENCY workers open endless streams, read 10 chunks, cancel, and record
 *   when; LIMIT cancels in all, after a warm-up of up to 64 that are not reported. Prints
 *   {"cancels": [{ "id", "at" }]} for the runner to match with the server's abort reports.
 */
const [name = '', portText = '', concurrencyText = '', mode = '', limitText = ''] = process.argv.slice(2);
const system = SYSTEMS[name];
if (system === undefined) throw new Error(`unknown system ${name}`);
const concurrency = Number(concurrencyText);
const limit = Number(limitText);
const client = await system.connect(Number(portText));
const now = (): number => performance.timeOrigin + performance.now();
let sequence = 0;

if (mode === 'throughput') {
  await throughput(client, Math.min(500, limit / 4));
  const result = await throughput(client, limit);
  console.log(JSON.stringify(result));
} else {
  // A warm-up round first, not counted: a process that has just started pays for its first
  // garbage collections (the start-up heap is copied once), a one-off that is not a cancel's
  // cost, and the throughput phase discards its warm-up in the same way.
  await cancelStreams(client, concurrency, Math.min(64, limit));
  console.log(JSON.stringify({ cancels: await cancelStreams(client, concurrency, limit) }));
}
await client.close();
process.exit(0);

/** Opens `limit` endless streams, `concurrency` at a time, each cancelled after 10 chunks. */
async function cancelStreams(bench: BenchClient, concurrency: number, limit: number): Promise<Array<{ id: string; at: number }>> {
  const cancels: Array<{ id: string; at: number }> = [];
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started++ < limit) {
        const id = `${process.pid}-${sequence++}`;
        const stream = bench.open({ id, n: -1 });
        for (let i = 0; i < 10; i++) await stream.next();
        cancels.push({ id, at: now() });
        stream.cancel();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }),
  );
  return cancels;
}

async function throughput(bench: BenchClient, ms: number): Promise<{ chunks: number; seconds: number; ttfc50: number; ttfc99: number }> {
  let chunks = 0;
  const firsts: number[] = [];
  const start = now();
  const worker = async (): Promise<void> => {
    while (now() - start < ms && firsts.length < 1_000_000) {
      const opened = now();
      const stream = bench.open({ id: `${process.pid}-${sequence++}`, n: 1000 });
      let first = true;
      while ((await stream.next()) !== undefined) {
        if (first) {
          firsts.push((now() - opened) * 1000);
          first = false;
        }
        chunks++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const sorted = firsts.sort((a, b) => a - b);
  const pick = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
  return { chunks, seconds: (now() - start) / 1000, ttfc50: pick(0.5), ttfc99: pick(0.99) };
}
