import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * bench:unary — shuttle-rpc against a raw `net` baseline, @grpc/grpc-js and Moleculer (TCP
 * transporter; its default JSON serializer and its MessagePack one), side by side in one run,
 * and shuttle over its grpc transport against the bare grpc-js underneath it. For every payload
 * size and concurrency, each system gets a fresh server process and a fresh client process (so
 * client and server never share a core's event loop), one after the other. Prints a markdown
 * table with requests/s, p50/p99 latency and the ratios.
 *
 * Options: --ms N (measured time per cell, default 3000), --rounds N (repeat the whole matrix
 * and keep each cell's best throughput, default 1).
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const durationMs = numberOption('ms', 3000);
const rounds = numberOption('rounds', 1);
const payloads = [64, 64 * 1024];
const concurrencies = [1, 32, 256];
// --systems a,b runs a subset; the ratio columns need shuttle and the system they compare with.
const allSystems = ['shuttle', 'raw', 'grpc-js', 'moleculer', 'moleculer-msgpack', 'shuttle-grpc'];
const only = process.argv.indexOf('--systems');
const systems = only < 0 ? allSystems : (process.argv[only + 1] ?? '').split(',').filter((name) => allSystems.includes(name));

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
const failed = new Set<string>();
for (let round = 0; round < rounds; round++) {
  for (const bytes of payloads) {
    for (const concurrency of concurrencies) {
      for (const system of systems) {
        const key = `${bytes}/${concurrency}/${system}`;
        let result: Result;
        try {
          result = await measure(system, bytes, concurrency);
        } catch (error) {
          // A system that fails a cell (its client saw an error) is reported as such; the others go on.
          failed.add(key);
          process.stderr.write(`round ${round + 1} ${key}: failed (${(error as Error).message})\n`);
          continue;
        }
        const previous = best.get(key);
        if (previous === undefined || result.requests / result.seconds > previous.requests / previous.seconds) best.set(key, result);
        process.stderr.write(`round ${round + 1} ${key}: ${Math.round(result.requests / result.seconds)} req/s\n`);
      }
    }
  }
}

const rps = (result: Result | undefined): number => (result === undefined ? Number.NaN : result.requests / result.seconds);
const lat = (result: Result | undefined): string => (result === undefined ? '-' : `${result.p50.toFixed(0)} / ${result.p99.toFixed(0)}`);
const count = (result: Result | undefined): string => (result === undefined ? '-' : String(Math.round(rps(result))));
/** A cell's count, or "failed" when every round of it failed. */
const countOf = (key: string): string => (best.get(key) === undefined && failed.has(key) ? 'failed' : count(best.get(key)));
const ratio = (a: Result | undefined, b: Result | undefined): string => (a === undefined || b === undefined ? '-' : `${(rps(a) / rps(b)).toFixed(2)}x`);
const lines = [
  `| payload | concurrency | shuttle req/s | shuttle p50 / p99 µs | raw net req/s | raw p50 / p99 µs | grpc-js req/s | grpc-js p50 / p99 µs | Moleculer JSON req/s | Moleculer msgpack req/s | Moleculer p50 / p99 µs (best) | shuttle-grpc req/s | shuttle / raw | shuttle / grpc-js | shuttle / Moleculer (best) | shuttle-grpc / grpc-js |`,
  `|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`,
];
for (const bytes of payloads) {
  for (const concurrency of concurrencies) {
    const [s, r, g, mj, mm, sg] = allSystems.map((system) => best.get(`${bytes}/${concurrency}/${system}`));
    // Moleculer's better serializer for this cell is the one a user would keep.
    const m = rps(mm) > rps(mj) || mj === undefined ? mm : mj;
    const size = bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;
    lines.push(
      `| ${size} | ${concurrency} | ${count(s)} | ${lat(s)} | ${count(r)} | ${lat(r)} | ${count(g)} | ${lat(g)} | ${count(mj)} | ${count(mm)} | ${lat(m)} | ${countOf(`${bytes}/${concurrency}/shuttle-grpc`)} | ${ratio(s, r)} | ${ratio(s, g)} | ${ratio(s, m)} | ${ratio(sg, g)} |`,
    );
  }
}
console.log(lines.join('\n'));
