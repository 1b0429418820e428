import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/*
 * The README's main command: an inference fan-out on simulated GPU workers.
 * Starts three worker processes of different sizes, which announce themselves (model, GPU,
 * batch slots, KV capacity) in the registry — the embedded default file registry, or
 * `--registry etcd://host:port` — then a consumer that replays a multi-turn chat workload with
 * shared system prompts through the prefix-affinity balancer, and prints what happened.
 * `--engine openai --url http://host:port/v1` (repeatable) fans out over real engines (vLLM,
 * SGLang, TGI, Ollama) instead, each behind a `shuttle worker --engine openai` adapter.
 */
const { values } = parseArgs({
  options: {
    registry: { type: 'string' },
    loadbalance: { type: 'string', default: 'prefix-affinity' },
    engine: { type: 'string', default: 'sim' },
    url: { type: 'string', multiple: true },
  },
});
if (values.engine !== 'sim' && values.engine !== 'openai') throw new Error(`--engine must be sim or openai, got ${JSON.stringify(values.engine)}`);
if (values.engine === 'openai' && (values.url ?? []).length === 0) throw new Error('--engine openai needs --url http://host:port/v1 (once per engine)');
const here = fileURLToPath(new URL('.', import.meta.url));
const env = { ...process.env, ...(values.registry === undefined ? {} : { SHUTTLE_REGISTRY: values.registry }) };
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
console.log(`registry: ${values.registry ?? 'embedded default (file registry of this host)'}`);
if (values.engine === 'sim') {
  for (const args of fleet) {
    const url = await startWorker(`${here}inference/worker.js`, args);
    console.log(`worker ${args[1]} (${args[3]}, ${args[5]} slots, ${args[7]} KV tokens) at ${url}`);
  }
} else {
  // Real engines: one `shuttle worker --engine openai` adapter in front of each.
  for (const [index, engineUrl] of values.url!.entries()) {
    const name = `engine-${index + 1}`;
    const url = await startWorker(`${here}../../dist/cli/main.js`, ['worker', '--engine', 'openai', '--url', engineUrl, '--name', name]);
    console.log(`worker ${name} (OpenAI-compatible engine at ${engineUrl}) at ${url}`);
  }
}

const consumer = spawn(process.execPath, [`${here}inference/consumer.js`, '--loadbalance', values.loadbalance!], { stdio: 'inherit', env });
const code = await new Promise<number>((resolve) => consumer.once('exit', (exitCode) => resolve(exitCode ?? 1)));
stopWorkers();
await Promise.all(workers.map((worker) => (worker.exitCode === null ? new Promise((resolve) => worker.once('exit', resolve)) : undefined)));
console.log(`demo finished (consumer exit code ${code})`);
process.exit(code);
