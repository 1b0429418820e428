import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/*
 * The README's main command: starts the example provider and consumer as two processes.
 * The provider prints {"ready": url}; the consumer is given that url.
 */
const here = fileURLToPath(new URL('.', import.meta.url));
const provider = spawn(process.execPath, [`${here}hello/provider.js`], { stdio: ['ignore', 'pipe', 'inherit'] });
const stopProvider = (): void => {
  if (provider.exitCode === null) provider.kill('SIGTERM');
};
process.once('exit', stopProvider);

const url = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('provider did not start within 10 s')), 10_000);
  provider.once('exit', (code) => reject(new Error(`provider exited with ${code}`)));
  createInterface({ input: provider.stdout }).on('line', (line) => {
    const ready = (JSON.parse(line) as { ready?: string }).ready;
    if (ready !== undefined) {
      clearTimeout(timer);
      resolve(ready);
    }
  });
});
console.log(`provider (pid ${provider.pid}) listening at ${url}`);

const consumer = spawn(process.execPath, [`${here}hello/consumer.js`, url], { stdio: 'inherit' });
const code = await new Promise<number>((resolve) => consumer.once('exit', (exitCode) => resolve(exitCode ?? 1)));
stopProvider();
await new Promise((resolve) => provider.once('exit', resolve));
console.log(`demo finished (consumer exit code ${code})`);
process.exit(code);
