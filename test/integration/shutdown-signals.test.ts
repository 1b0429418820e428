import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * A provider started with `shutdownOnSignals` (the example's simulated GPU worker) as an
 * operator stops it: a closed terminal (SIGHUP) drains as SIGTERM does, and a second signal
 * during the drain ends the process at once, saying so, instead of killing it silently.
 */
const workers: Child[] = [];
afterEach(async () => {
  for (const worker of workers.splice(0)) await worker.stop(500);
});

async function worker(): Promise<{ child: Child; stderr: () => string; exit: Promise<number | null> }> {
  const child = await startFixture('../../examples/inference/worker', { SHUTTLE_LOG_LEVEL: 'debug' }, 10_000, [], ['--slots', '2']);
  workers.push(child);
  let stderr = '';
  child.process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.process.once('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, exit };
}

describe('a provider with shutdownOnSignals', () => {
  it('drains on SIGHUP, logging it, and exits 0', async () => {
    const { child, stderr, exit } = await worker();
    child.process.kill('SIGHUP');
    expect(await exit).toBe(0);
    expect(stderr()).toMatch(/SIGHUP: draining/);
  });

  it('exits at once with code 1 on a second signal during the drain, logging what is lost', async () => {
    const { child, stderr, exit } = await worker();
    const client = await createClient({ registry: `shuttle://${child.host}:${child.port}`, config: false, log: false });
    try {
      // A long generation keeps the drain waiting (drainTimeoutMs 10 s).
      const llm = client.proxy<LlmApi>('inference.LLM');
      const tokens = llm.generate({ prompt: 'a long answer', maxTokens: 1024 })[Symbol.asyncIterator]();
      expect((await tokens.next()).done).toBe(false);
      const reading = (async () => {
        while (!(await tokens.next()).done);
      })().catch(() => undefined);
      const signalledAt = Date.now();
      child.process.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      child.process.kill('SIGTERM');
      expect(await exit).toBe(1);
      expect(Date.now() - signalledAt).toBeLessThan(3000);
      expect(stderr()).toMatch(/SIGTERM: draining/);
      expect(stderr()).toMatch(/SIGTERM while draining after SIGTERM: exiting now/);
      await reading;
    } finally {
      await client.close();
    }
  });
});
