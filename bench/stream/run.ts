import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * bench:stream — server streaming: shuttle-rpc (over its tcp transport and over its grpc
 * transport) against a raw `net` baseline and bare @grpc/grpc-js, side by side in one run. For each concurrency (1 and 16 streams) each system gets a fresh
 * server process and a fresh client process; streams of 1,000 token-sized chunks run back to
 * back for --ms (default 3000) ms. Then a cancel phase: --cancels (default 200) endless
 * streams, each cancelled after 10 chunks; the latency is from the client's cancel to the
 * server handler seeing it, both timed on this machine's clock.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const durationMs = numberOption('ms', 3000);
const cancelCount = numberOption('cancels', 200);
// --rounds N repeats the throughput and cancel phases N times, the systems interleaved within
// each round, and reports each system's median throughput round and best cancel round: on a
// noisy shared machine one round can be off by 30 % either way.
const rounds = numberOption('rounds', 1);
const allSystems = ['shuttle', 'shuttle-grpc', 'raw', 'grpc-js'];
// --systems a,b runs a subset (ratio columns need the system they compare with).
const only = process.argv.indexOf('--systems');
const systems = only < 0 ? allSystems : (process.argv[only + 1] ?? '').split(',').filter((name) => allSystems.includes(name));
const concurrencies = [1, 16];

interface Throughput {
  chunks: number;
  seconds: number;
  ttfc50: number;
  ttfc99: number;
}

/**
 * Runs `body` against a fresh server process of `system`, then stops the server and collects
 * the cancels its handlers observed. The server keeps those reports in memory and prints them
 * as it exits: a line written to a pipe per cancel, during the measurement, costs the server's
 * event loop ~50 µs each, and the cancels of 16 streams arrive together, so the reports would
 * make up most of the later cancels' measured latency.
 */
async function withServer<T>(system: string, body: (port: number) => Promise<T>): Promise<{ value: T; aborts: Map<string, number> }> {
  const server = spawn(process.execPath, [`${here}server.js`, system], { stdio: ['ignore', 'pipe', 'inherit'] });
  const aborts = new Map<string, number>();
  const lines = createInterface({ input: server.stdout! });
  const read = new Promise((resolve) => lines.once('close', resolve));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${system} server did not start`)), 10_000);
      lines.on('line', (line) => {
        const message = JSON.parse(line) as { port?: number; abort?: string; at?: number };
        if (message.port !== undefined) {
          clearTimeout(timer);
          resolve(message.port);
        } else if (message.abort !== undefined) aborts.set(message.abort, message.at!);
      });
    });
    const value = await body(port);
    return { value, aborts };
  } finally {
    server.kill('SIGTERM');
    await Promise.all([new Promise((resolve) => server.once('exit', resolve)), read]);
  }
}

async function runClient(args: string[], timeoutMs: number): Promise<unknown> {
  const client = spawn(process.execPath, [`${here}client.js`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => client.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`client ${args.join(' ')} exited with ${code}`);
  return JSON.parse(output.trim().split('\n').at(-1)!);
}

const measured = new Map<string, Throughput[]>();
for (let round = 1; round <= rounds; round++) {
  for (const concurrency of concurrencies) {
    for (const system of systems) {
      const result = (
        await withServer(system, (port) => runClient([system, String(port), String(concurrency), 'throughput', String(durationMs)], durationMs + 30_000))
      ).value as Throughput;
      const key = `${concurrency}/${system}`;
      measured.set(key, [...(measured.get(key) ?? []), result]);
      process.stderr.write(`round ${round}: ${system} x${concurrency}: ${Math.round(result.chunks / result.seconds)} chunks/s\n`);
    }
  }
}
/** The median of `values` (the lower middle one for an even count). */
const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const rate = (result: Throughput): number => result.chunks / result.seconds;
/** Each system's median round, for the absolute columns. */
const throughput = new Map<string, Throughput>();
for (const [key, results] of measured) {
  const middle = median(results.map(rate));
  throughput.set(key, results.find((result) => rate(result) === middle)!);
}
/**
 * A ratio between two systems: the median over rounds of the ratio within each round, whose
 * two runs were seconds apart — steadier than a ratio of medians when the machine's speed
 * drifts between rounds.
 */
const pairedRatio = (concurrency: number, system: string, baseline: string): number =>
  median(measured.get(`${concurrency}/${system}`)!.map((result, round) => rate(result) / rate(measured.get(`${concurrency}/${baseline}`)![round]!)));

/**
 * The cancel phase, once a round for each system (interleaved, like the throughput phase); the
 * table shows each system's round with the lowest p99, and every round's p99 beside it.
 */
const cancelRounds = new Map<string, Array<{ p50: number; p99: number; matched: number }>>();
for (let round = 1; round <= rounds; round++) {
  for (const system of systems) {
    const { value, aborts } = await withServer(
      system,
      async (port) => (await runClient([system, String(port), '16', 'cancel', String(cancelCount)], 60_000)) as { cancels: Array<{ id: string; at: number }> },
    );
    const latencies = value.cancels.filter((cancel) => aborts.has(cancel.id)).map((cancel) => aborts.get(cancel.id)! - cancel.at);
    latencies.sort((a, b) => a - b);
    const pick = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
    cancelRounds.set(system, [...(cancelRounds.get(system) ?? []), { p50: pick(0.5), p99: pick(0.99), matched: latencies.length }]);
  }
}

const lines = [`| streams | system | chunks/s (median of ${rounds}) | TTFC p50 / p99 µs | vs raw net | vs bare grpc-js |`, '|---|---|---|---|---|---|'];
for (const concurrency of concurrencies) {
  for (const system of systems) {
    const result = throughput.get(`${concurrency}/${system}`)!;
    const ratio = (baseline: string): string =>
      system === baseline ? '1' : systems.includes(baseline) ? `${pairedRatio(concurrency, system, baseline).toFixed(2)}x` : '–';
    lines.push(
      `| ${concurrency} | ${system} | ${Math.round(rate(result))} | ${result.ttfc50.toFixed(0)} / ${result.ttfc99.toFixed(0)} | ${ratio('raw')} | ${ratio('grpc-js')} |`,
    );
  }
}
lines.push('', '| system | cancel → handler abort p50 ms | p99 ms (best round) | p99 ms, every round | cancels matched |', '|---|---|---|---|---|');
for (const system of systems) {
  const all = cancelRounds.get(system)!;
  const best = all.reduce((a, b) => (b.p99 < a.p99 ? b : a));
  lines.push(
    `| ${system} | ${best.p50.toFixed(2)} | ${best.p99.toFixed(2)} | ${all.map((round) => round.p99.toFixed(2)).join(', ')} | ${best.matched} / ${cancelCount} |`,
  );
}
console.log(lines.join('\n'));
