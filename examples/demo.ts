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
 */
const { values } = parseArgs({ options: { registry: { type: 'string' }, loadbalance: { type: 'string', default: 'prefix-affinity' } } });
const here = fileURLToPath(new URL('.', import.meta.url));
const env = { ...process.env, ...(values.registry === undefined ? {} : { SHUTTLE_REGISTRY: values.registry }) };
const workers: ChildProcess[] = [];
const stopWorkers = (): void => {
  for (const worker of workers) if (worker.exitCode === null) worker.kill('SIGTERM');
};
process.once('exit', stopWorkers);

async function startWorker(args: string[]): Promise<string> {
  const worker = spawn(process.execPath, [`${here}inference/worker.js`, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
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
for (const args of fleet) {
  const url = await startWorker(args);
  console.log(`worker ${args[1]} (${args[3]}, ${args[5]} slots, ${args[7]} KV tokens) at ${url}`);
}

const consumer = spawn(process.execPath, [`${here}inference/consumer.js`, '--loadbalance', values.loadbalance!], { stdio: 'inherit', env });
const code = await new Promise<number>((resolve) => consumer.once('exit', (exitCode) => resolve(exitCode ?? 1)));
stopWorkers();
await Promise.all(workers.map((worker) => (worker.exitCode === null ? new Promise((resolve) => worker.once('exit', resolve)) : undefined)));
console.log(`demo finished (consumer exit code ${code})`);
process.exit(code);
