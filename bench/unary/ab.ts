import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * A/B of one bench:unary cell between two builds of shuttle-rpc, to tell a regression from a
 * noisy machine: `node build/bench/unary/ab.js --other ../old-checkout [--this ../new-checkout] [--runs 4] [--bytes 64]
 * [--concurrency 256] [--ms 3000]`. The other checkout must be built (npm run build) and have
 * its node_modules. Runs alternate (this, other, this, other…); prints each build's req/s and,
 * on Linux, the server and client processes' CPU time per measured call (µs; the warm-up's share
 * included): on a shared machine throughput follows the neighbours' load, CPU per call much
 * less so.
 */
const args = process.argv.slice(2);
const otherIndex = args.indexOf('--other');
if (otherIndex < 0 || args[otherIndex + 1] === undefined) throw new Error('--other <path of another built checkout> is required');
const other = args[otherIndex + 1]!;
const runs = numberOption('runs', 4);
const bytes = numberOption('bytes', 64);
const concurrency = numberOption('concurrency', 256);
const durationMs = numberOption('ms', 3000);
const thisIndex = args.indexOf('--this');
// This checkout by default; `--this <path>` compares two other built checkouts.
const thisRoot = thisIndex >= 0 && args[thisIndex + 1] !== undefined ? args[thisIndex + 1]! : fileURLToPath(new URL('../../../', import.meta.url));

/** User + system CPU seconds of process `pid` so far (Linux /proc; NaN elsewhere). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat, counted from the state field (3rd) here.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}
/** CPU seconds of this process's children that have exited and been waited for (cutime + cstime). */
function childrenCpuSeconds(): number {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}
/** Linux's USER_HZ, fixed at 100 on every architecture Node runs on. */
const CLOCK_TICKS = 100;

interface Run {
  rps: number;
  cpuMicros: number;
  clientCpuMicros: number;
}

async function run(root: string): Promise<Run> {
  const here = `${root}/build/bench/unary/`;
  const server = spawn(process.execPath, [`${here}server.js`, 'shuttle'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    createInterface({ input: server.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { port?: number };
      if (message.port !== undefined) resolve(message.port);
    }),
  );
  const cpuBefore = cpuSeconds(server.pid);
  const clientCpuBefore = childrenCpuSeconds();
  const client = spawn(process.execPath, [`${here}client.js`, 'shuttle', String(port), String(bytes), String(concurrency), String(durationMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => client.once('exit', resolve));
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  const clientCpu = childrenCpuSeconds() - clientCpuBefore;
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  const result = JSON.parse(output.trim().split('\n').at(-1)!) as { requests: number; seconds: number };
  return {
    rps: Math.round(result.requests / result.seconds),
    cpuMicros: Math.round((cpu * 1e6) / result.requests),
    clientCpuMicros: Math.round((clientCpu * 1e6) / result.requests),
  };
}

const results = { this: [] as Run[], other: [] as Run[] };
for (let i = 0; i < runs; i++) {
  results.this.push(await run(thisRoot));
  results.other.push(await run(other));
}
type Key = 'rps' | 'cpuMicros' | 'clientCpuMicros';
const list = (key: Key, side: 'this' | 'other'): string => results[side].map((result) => result[key]).join(' / ');
const median = (key: Key, side: 'this' | 'other'): number => {
  const sorted = results[side].map((result) => result[key]).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const cpuLine = (label: string, key: Key): string =>
  `${label} CPU µs per call — this build: ${list(key, 'this')} (median ${median(key, 'this')}); ${other}: ${list(key, 'other')} (median ${median(key, 'other')}); ratio ${(median(key, 'this') / median(key, 'other')).toFixed(2)}`;
console.log(`shuttle ${bytes} B x${concurrency}, req/s — this build: ${list('rps', 'this')}; ${other}: ${list('rps', 'other')}`);
console.log(cpuLine('server', 'cpuMicros'));
// The client's whole life (start-up included), per measured call.
console.log(cpuLine('client', 'clientCpuMicros'));
