import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseDemoOptions, DemoUsageError, usage, type DemoOptions } from './demo-options.js';
import { comparisonTable, type RunSummary } from './inference/report.js';

/*
 * The README's main command: an inference fan-out on simulated GPU workers.
 * Starts three worker processes of different sizes, which announce themselves (model, GPU,
 * batch slots, KV capacity) in the registry — the embedded default file registry, or
 * `--registry etcd://host:port` — then a consumer that replays a multi-turn chat workload with
 * shared system prompts through the prefix-affinity balancer, and prints what happened.
 * `--engine openai --url http://host:port/v1` (repeatable) fans out over real engines (vLLM,
 * SGLang, TGI, Ollama) instead, each behind a `shuttle worker --engine openai` adapter.
 * `--compare` runs the workload again with round-robin on a fresh fleet and shows both side
 * by side; `--help` lists the options. The consumer serves the live dashboard while it runs.
 */
let options: DemoOptions;
try {
  options = await parseDemoOptions(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof DemoUsageError)) throw error;
  process.stderr.write(`demo: ${error.message}\n\n${await usage()}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(await usage());
  process.exit(0);
}
const here = fileURLToPath(new URL('.', import.meta.url));
const env = { ...process.env, ...(options.registry === undefined ? {} : { SHUTTLE_REGISTRY: options.registry }) };
const workers: ChildProcess[] = [];
const stopWorkers = (): void => {
  for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGTERM');
};
process.once('exit', stopWorkers);

async function startWorker(script: string, args: string[]): Promise<string> {
  const worker = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  workers.push(worker);
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker did not start within 10 s')), 10_000);
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
    createInterface({ input: worker.stdout! }).on('line', (line) => {
      const ready = (JSON.parse(line) as { ready?: string }).ready;
      if (ready !== undefined) {
        clearTimeout(timer);
        resolve(ready);
      }
    });
  });
}

const fleet = [
  ['--name', 'h100-a', '--gpu', 'H100', '--slots', '16', '--kv', '400000'],
  ['--name', 'a10-b', '--gpu', 'A10', '--slots', '8', '--kv', '120000'],
  ['--name', 'l4-c', '--gpu', 'L4', '--slots', '4', '--kv', '60000'],
];

/** Starts the workers (fresh: empty caches), runs the consumer with `policy`, stops the workers. */
async function run(policy: string): Promise<{ code: number; summary: RunSummary | undefined }> {
  if (options.engine === 'sim') {
    for (const args of fleet) {
      const url = await startWorker(`${here}inference/worker.js`, args);
      console.log(`worker ${args[1]} (${args[3]}, ${args[5]} slots, ${args[7]} KV tokens) at ${url}`);
    }
  } else {
    // Real engines: one `shuttle worker --engine openai` adapter in front of each.
    for (const [index, engineUrl] of options.urls.entries()) {
      const name = `engine-${index + 1}`;
      const url = await startWorker(`${here}../../dist/cli/main.js`, ['worker', '--engine', 'openai', '--url', engineUrl, '--name', name]);
      console.log(`worker ${name} (OpenAI-compatible engine at ${engineUrl}) at ${url}`);
    }
  }
  const consumer = spawn(
    process.execPath,
    [`${here}inference/consumer.js`, '--loadbalance', policy, '--admin-port', String(options.adminPort), '--summary-json'],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  );
  let summary: RunSummary | undefined;
  createInterface({ input: consumer.stdout! }).on('line', (line) => {
    if (line.startsWith('{"summary":')) summary = (JSON.parse(line) as { summary: RunSummary }).summary;
    else if (line.startsWith('admin ')) console.log(`dashboard: ${line.slice('admin '.length)} (open it while the demo runs)`);
    else console.log(line);
  });
  const code = await new Promise<number>((resolve) => consumer.once('exit', (exitCode) => resolve(exitCode ?? 1)));
  stopWorkers();
  await Promise.all(workers.map((worker) => (worker.exitCode === null ? new Promise((resolve) => worker.once('exit', resolve)) : undefined)));
  workers.length = 0;
  return { code, summary };
}

console.log(`registry: ${options.registry ?? 'embedded default (file registry of this host)'}`);
const first = await run(options.loadbalance);
let code = first.code;
if (options.compare) {
  console.log(`\nthe same workload with round-robin, on a fresh fleet (empty caches):`);
  const second = await run('round-robin');
  code = Math.max(code, second.code);
  const runs = [first.summary, second.summary].filter((summary): summary is RunSummary => summary !== undefined);
  console.log(`\n${runs.map((summary) => summary.policy).join(' vs ')} (ratios to ${runs[0]?.policy}):`);
  console.log(comparisonTable(runs));
}
console.log(`demo finished (consumer exit code ${code})`);
process.exit(code);
