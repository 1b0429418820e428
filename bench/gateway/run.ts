import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { numberOption } from '../common/common.js';

/*
 * bench:gateway — what the OpenAI bridge costs. The official openai client streams chat
 * completions from a fake engine that generates tokens back to back (so only the path is
 * measured), three ways, side by side in one run, every piece its own process:
 *   direct:  client → engine
 *   proxy:   client → a plain Node HTTP pipe → engine (the least any Node gateway does)
 *   shuttle: client → `shuttle gateway` → shuttle rpc → `shuttle worker --engine openai` → engine
 * For each concurrency each system gets fresh processes and --ms (default 3000) ms of load
 * after a warm-up (--warmup-ms, 500 by default); --rounds N interleaves the systems N times and keeps each cell's
 * best round; --tokens (default 16) tokens per request; --concurrency a,b only those.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const cli = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const durationMs = numberOption('ms', 3000);
const rounds = numberOption('rounds', 1);
const tokens = numberOption('tokens', 16);
const warmupMs = numberOption('warmup-ms', 500);
const systems = ['direct', 'proxy', 'shuttle'] as const;
// --concurrency a,b runs some of the concurrencies only.
const onlyConcurrency = process.argv.indexOf('--concurrency');
const concurrencies =
  onlyConcurrency < 0
    ? [1, 16, 64]
    : (process.argv[onlyConcurrency + 1] ?? '')
        .split(',')
        .map(Number)
        .filter((n) => n > 0);

interface Result {
  requests: number;
  tokens: number;
  seconds: number;
  failures: number;
  ttft50: number;
  ttft99: number;
  total50: number;
  total99: number;
}

const children: ChildProcess[] = [];
process.once('exit', () => children.forEach((child) => child.kill('SIGKILL')));

/** Starts a process and waits for the JSON line with `key`. */
async function start(args: string[], key: string, env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; value: string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  children.push(child);
  const value = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start`)), 15_000);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as Record<string, string>;
      if (parsed[key] !== undefined) {
        clearTimeout(timer);
        resolve(parsed[key]!);
      }
    });
  });
  return { child, value };
}

async function stopAll(started: ChildProcess[]): Promise<void> {
  for (const child of started.reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

/** Brings up one system; returns the base URL the client calls and what to stop after. */
async function bringUp(system: (typeof systems)[number]): Promise<{ baseURL: string; started: ChildProcess[]; dir?: string }> {
  const engine = await start([`${here}engine.js`], 'url');
  if (system === 'direct') return { baseURL: engine.value, started: [engine.child] };
  if (system === 'proxy') {
    const proxy = await start([`${here}proxy.js`, engine.value], 'url');
    return { baseURL: proxy.value, started: [engine.child, proxy.child] };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-gateway-'));
  const env = { ...process.env, SHUTTLE_REGISTRY: `file://${dir}` };
  const worker = await start([cli, 'worker', '--engine', 'openai', '--url', engine.value, '--metrics-url', 'none'], 'ready', env);
  const gateway = await start([cli, 'gateway', '--port', '0'], 'openai', env);
  return { baseURL: gateway.value, started: [engine.child, worker.child, gateway.child], dir };
}

async function measure(system: (typeof systems)[number], concurrency: number): Promise<Result> {
  const { baseURL, started, dir } = await bringUp(system);
  try {
    const client = spawn(process.execPath, [`${here}client.js`, baseURL, String(concurrency), String(durationMs), String(tokens), String(warmupMs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    client.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => client.kill('SIGKILL'), durationMs + 30_000);
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`${system} client exited with ${code}`);
    return JSON.parse(output) as Result;
  } finally {
    await stopAll(started);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

const best = new Map<string, Result>();
for (let round = 1; round <= rounds; round++) {
  for (const concurrency of concurrencies) {
    for (const system of systems) {
      const result = await measure(system, concurrency);
      const key = `${system}/${concurrency}`;
      const previous = best.get(key);
      if (previous === undefined || result.requests > previous.requests) best.set(key, result);
      process.stderr.write(`round ${round}: ${key} ${(result.requests / result.seconds).toFixed(0)} req/s, ${result.failures} failed\n`);
    }
  }
}

const rate = (result: Result): number => result.requests / result.seconds;
const ms = (value: number): string => value.toFixed(1);
console.log(`\nbench:gateway — streaming chat completions of ${tokens} tokens, ${durationMs} ms per cell, best of ${rounds} round(s)\n`);
console.log('| concurrency | system | req/s | tokens/s | TTFT p50 / p99 ms | total p50 / p99 ms | failed | req/s vs direct |');
console.log('|---|---|---|---|---|---|---|---|');
for (const concurrency of concurrencies) {
  const direct = best.get(`direct/${concurrency}`)!;
  for (const system of systems) {
    const result = best.get(`${system}/${concurrency}`)!;
    console.log(
      `| ${concurrency} | ${system} | ${rate(result).toFixed(0)} | ${(result.tokens / result.seconds).toFixed(0)} | ${ms(result.ttft50)} / ${ms(result.ttft99)} | ${ms(result.total50)} / ${ms(result.total99)} | ${result.failures} | ${(rate(result) / rate(direct)).toFixed(2)}x |`,
    );
  }
}
