import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * A/B of one bench:unary cell between two builds of shuttle-rpc, to tell a regression from a
 * noisy machine: `node build/bench/unary/ab.js --other ../old-checkout [--runs 4] [--bytes 64]
 * [--concurrency 256] [--ms 3000]`. The other checkout must be built (npm run build) and have
 * its node_modules. Runs alternate (this, other, this, other…); prints each build's req/s.
 */
const args = process.argv.slice(2);
const otherIndex = args.indexOf('--other');
if (otherIndex < 0 || args[otherIndex + 1] === undefined) throw new Error('--other <path of another built checkout> is required');
const other = args[otherIndex + 1]!;
const runs = numberOption('runs', 4);
const bytes = numberOption('bytes', 64);
const concurrency = numberOption('concurrency', 256);
const durationMs = numberOption('ms', 3000);
const thisRoot = fileURLToPath(new URL('../../../', import.meta.url));

async function run(root: string): Promise<number> {
  const here = `${root}/build/bench/unary/`;
  const server = spawn(process.execPath, [`${here}server.js`, 'shuttle'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    createInterface({ input: server.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { port?: number };
      if (message.port !== undefined) resolve(message.port);
    }),
  );
  const client = spawn(process.execPath, [`${here}client.js`, 'shuttle', String(port), String(bytes), String(concurrency), String(durationMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => client.once('exit', resolve));
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  const result = JSON.parse(output.trim().split('\n').at(-1)!) as { requests: number; seconds: number };
  return Math.round(result.requests / result.seconds);
}

const results = { this: [] as number[], other: [] as number[] };
for (let i = 0; i < runs; i++) {
  results.this.push(await run(thisRoot));
  results.other.push(await run(other));
}
console.log(`shuttle ${bytes} B x${concurrency}, req/s — this build: ${results.this.join(' / ')}; ${other}: ${results.other.join(' / ')}`);
