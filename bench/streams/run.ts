import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * bench:streams — what a gateway really carries: many slow streams through one consumer. For
 * each N (--streams, default 1000,5000,10000) a fresh server process feeds N streams in engine
 * steps (one token for every stream every --cadence ms, default 40: 25 tokens/s each) and a
 * fresh client process reads them all on one connection for --ms (default 10000). Prints a
 * markdown table: tokens/s delivered against offered, the gap between one stream's tokens
 * (p50, p99, max; the cadence is the ideal) and CPU per side. --handlers (default
 * push,generator) says how the provider's method is written: returning a PushStream the engine
 * step pushes into, or as an async generator each step wakes; one row per handler and N.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const durationMs = numberOption('ms', 10_000);
const cadenceMs = numberOption('cadence', 40);
const index = process.argv.indexOf('--streams');
const counts = (index < 0 ? '1000,5000,10000' : (process.argv[index + 1] ?? '')).split(',').map(Number);
const handlersAt = process.argv.indexOf('--handlers');
const handlers = (handlersAt < 0 ? 'push,generator' : (process.argv[handlersAt + 1] ?? '')).split(',');

interface Result {
  tokens: number;
  seconds: number;
  gapP50: number;
  gapP99: number;
  gapMax: number;
  cpuMs: number;
}

async function measure(streams: number, handler: string): Promise<Result & { serverCpuMs: number }> {
  const server = spawn(process.execPath, [`${here}server.js`, String(cadenceMs), handler], { stdio: ['ignore', 'pipe', 'inherit'] });
  const cpuSamples: number[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not start')), 10_000);
      createInterface({ input: server.stdout! }).on('line', (line) => {
        const message = JSON.parse(line) as { port?: number; cpu?: number };
        if (message.port !== undefined) {
          clearTimeout(timer);
          resolve(message.port);
        } else if (message.cpu !== undefined) cpuSamples.push(message.cpu);
      });
    });
    const client = spawn(process.execPath, [`${here}client.js`, String(port), String(streams), String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => client.kill('SIGKILL'), durationMs + 60_000);
    // The server's CPU over the measured window: its samples when the client starts and ends measuring.
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`client exited with ${code}`);
    const result = JSON.parse(output.trim().split('\n').at(-1)!) as Result;
    const window = Math.max(1, Math.round(result.seconds));
    const serverCpuMs = cpuSamples.length > window ? cpuSamples.at(-1)! - cpuSamples.at(-1 - window)! : Number.NaN;
    return { ...result, serverCpuMs: (serverCpuMs / window) * result.seconds };
  } finally {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
}

console.log(`bench:streams — one consumer, N streams at one token per ${cadenceMs} ms each, ${durationMs} ms measured\n`);
console.log('| streams | handler | offered tokens/s | delivered tokens/s | delivered | gap p50 | gap p99 | gap max | client CPU | server CPU |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const streams of counts) {
  for (const handler of handlers) {
    const result = await measure(streams, handler);
    const offered = (streams * 1000) / cadenceMs;
    const delivered = result.tokens / result.seconds;
    const percent = (value: number): string => `${Math.round((value / (result.seconds * 1000)) * 100)} %`;
    console.log(
      `| ${streams} | ${handler} | ${Math.round(offered)} | ${Math.round(delivered)} | ${Math.round((delivered / offered) * 100)} % | ${result.gapP50.toFixed(1)} ms | ${result.gapP99.toFixed(1)} ms | ${result.gapMax.toFixed(0)} ms | ${percent(result.cpuMs)} | ${percent(result.serverCpuMs)} |`,
    );
  }
}
