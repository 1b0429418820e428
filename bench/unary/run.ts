import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * bench:unary — shuttle-rpc against a raw `net` baseline and @grpc/grpc-js, side by side in one
 * run. For every payload size and concurrency, each system gets a fresh server process and a
 * fresh client process (so client and server never share a core's event loop), one after the
 * other. Prints a markdown table with requests/s, p50/p99 latency and shuttle's ratios.
 *
 * Options: --ms N (measured time per cell, default 3000), --rounds N (repeat the whole matrix
 * and keep each cell's best throughput, default 1).
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const durationMs = numberOption('ms', 3000);
const rounds = numberOption('rounds', 1);
const payloads = [64, 64 * 1024];
const concurrencies = [1, 32, 256];
const systems = ['shuttle', 'raw', 'grpc-js'];

interface Result {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
}

async function measure(system: string, bytes: number, concurrency: number): Promise<Result> {
  const server = spawn(process.execPath, [`${here}server.js`, system], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${system} server did not start`)), 10_000);
      createInterface({ input: server.stdout! }).once('line', (line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    const client = spawn(process.execPath, [`${here}client.js`, system, String(port), String(bytes), String(concurrency), String(durationMs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timeout = setTimeout(() => client.kill('SIGKILL'), durationMs + 30_000);
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    clearTimeout(timeout);
    if (code !== 0) throw new Error(`${system} client exited with ${code}`);
    return JSON.parse(output) as Result;
  } finally {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
}

const best = new Map<string, Result>();
for (let round = 0; round < rounds; round++) {
  for (const bytes of payloads) {
    for (const concurrency of concurrencies) {
      for (const system of systems) {
        const result = await measure(system, bytes, concurrency);
        const key = `${bytes}/${concurrency}/${system}`;
        const previous = best.get(key);
        if (previous === undefined || result.requests / result.seconds > previous.requests / previous.seconds) best.set(key, result);
        process.stderr.write(`round ${round + 1} ${key}: ${Math.round(result.requests / result.seconds)} req/s\n`);
      }
    }
  }
}

const rps = (result: Result): number => result.requests / result.seconds;
const lines = [
  `| payload | concurrency | shuttle req/s | shuttle p50 / p99 µs | raw net req/s | raw p50 / p99 µs | grpc-js req/s | grpc-js p50 / p99 µs | shuttle / raw | shuttle / grpc-js |`,
  `|---|---|---|---|---|---|---|---|---|---|`,
];
for (const bytes of payloads) {
  for (const concurrency of concurrencies) {
    const [s, r, g] = systems.map((system) => best.get(`${bytes}/${concurrency}/${system}`)!) as [Result, Result, Result];
    const size = bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
    const lat = (result: Result): string => `${result.p50.toFixed(0)} / ${result.p99.toFixed(0)}`;
    lines.push(
      `| ${size} | ${concurrency} | ${Math.round(rps(s))} | ${lat(s)} | ${Math.round(rps(r))} | ${lat(r)} | ${Math.round(rps(g))} | ${lat(g)} | ${(rps(s) / rps(r)).toFixed(2)}x | ${(rps(s) / rps(g)).toFixed(2)}x |`,
    );
  }
}
console.log(lines.join('\n'));
