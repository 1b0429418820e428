import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createClient } from 'shuttle-rpc';
import { tempDir } from '../helpers/tmp.js';

/*
 * SIGTERM while a provider with `shutdownOnSignals` is still starting (an orchestrator stopping
 * a pod that has not finished starting): the start finishes, then the provider stops as any
 * stop does — it leaves the registry and exits 0. Before, the signal's default killed the
 * process in the middle, and a record registered by then stayed until its TTL.
 */
const FIXTURE = fileURLToPath(new URL('../../build/test/fixtures/slow-start-provider.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

describe('a signal during start-up', () => {
  it('lets the start finish, then leaves the registry and exits 0', async () => {
    const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REGISTER_MS: '800' } });
    const lines: Record<string, unknown>[] = [];
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      await new Promise<void>((resolve) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          lines.push(parsed);
          if (parsed['registering'] !== undefined) resolve();
        });
      });
      child.kill('SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
      expect(lines).toEqual([
        { registering: 'test.Echo' },
        { registered: 'test.Echo' },
        expect.objectContaining({ ready: expect.any(String) }),
        { unregistered: 'test.Echo' },
      ]);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });

  it('stops `shuttle worker` once its start has finished: it exits 0 and leaves no record behind', async () => {
    // An engine slow to list its models: the worker is signalled while it waits for them.
    let asked: () => void = () => {};
    const askedForModels = new Promise<void>((resolve) => (asked = resolve));
    const engine = http.createServer((request, response) => {
      if (request.url !== '/v1/models') return void response.writeHead(404).end();
      asked();
      setTimeout(() => response.end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] })), 800);
    });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    const folder = await tempDir();
    const registry = `file://${folder.dir}`;
    const url = `http://127.0.0.1:${(engine.address() as AddressInfo).port}/v1`;
    const child = spawn(process.execPath, [CLI, 'worker', '--url', url, '--metrics-url', 'none', '--health-url', 'none', '--registry', registry], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const client = await createClient({ registry, config: false, log: false });
    try {
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      await askedForModels;
      child.kill('SIGTERM');
      expect(await exit).toEqual({ code: 0, signal: null });
      expect(stderr).toMatch(/^SIGTERM: draining, then exiting/);
      client.proxy('inference.LLM');
      await client.ready();
      expect(client.providers()).toEqual([]);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      await client.close();
      engine.close();
      await folder.remove();
    }
  }, 20_000);
});
