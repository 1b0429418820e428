import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/*
 * The README's main command: starts two example providers and a consumer as separate
 * processes. The providers announce themselves in the embedded default registry (a folder of
 * this host, no server); the consumer finds them there and fans its calls out over both.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const providers: ChildProcess[] = [];
const stopProviders = (): void => {
  for (const provider of providers) if (provider.exitCode === null) provider.kill('SIGTERM');
};
process.once('exit', stopProviders);

async function startProvider(): Promise<string> {
  const provider = spawn(process.execPath, [`${here}hello/provider.js`], { stdio: ['ignore', 'pipe', 'inherit'] });
  providers.push(provider);
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('provider did not start within 10 s')), 10_000);
    provider.once('exit', (code) => reject(new Error(`provider exited with ${code}`)));
    createInterface({ input: provider.stdout! }).on('line', (line) => {
      const ready = (JSON.parse(line) as { ready?: string }).ready;
      if (ready !== undefined) {
        clearTimeout(timer);
        resolve(ready);
      }
    });
  });
}

for (let i = 0; i < 2; i++) {
  const url = await startProvider();
  console.log(`provider (pid ${providers[i]!.pid}) listening at ${url}, registered in the default registry`);
}

const consumer = spawn(process.execPath, [`${here}hello/consumer.js`], { stdio: 'inherit' });
const code = await new Promise<number>((resolve) => consumer.once('exit', (exitCode) => resolve(exitCode ?? 1)));
stopProviders();
await Promise.all(providers.map((provider) => (provider.exitCode === null ? new Promise((resolve) => provider.once('exit', resolve)) : undefined)));
console.log(`demo finished (consumer exit code ${code})`);
process.exit(code);
