import { execFile } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeEngine } from 'shuttle-rpc/testing';
import { startFixture } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/* The shipped examples, run as a user runs them (compiled, against dist/). */
const run = promisify(execFile);
const build = (file: string): string => fileURLToPath(new URL(`../../build/examples/${file}`, import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('examples', () => {
  it('the README main command: three simulated GPU workers and a consumer fanning a chat workload out', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const { stdout } = await run(process.execPath, [build('demo.js'), '--registry', `file://${registry.dir}`], { timeout: 60_000 });
    expect(stdout.match(/worker (h100-a|a10-b|l4-c) \(.+ slots, .+ KV tokens\) at shuttle:\/\/127\.0\.0\.1:\d+/g)).toHaveLength(3);
    expect(stdout).toMatch(/prefix-affinity: 144 requests in [\d.]+ s/);
    const rows = [...stdout.matchAll(/^\| (h100-a|a10-b|l4-c) \| (\d+) \| (\d+) \| (\d+) % \|$/gm)];
    expect(rows.map((row) => row[1]).sort()).toEqual(['a10-b', 'h100-a', 'l4-c']);
    expect(rows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(144);
    expect(stdout).toMatch(/TTFT p50 \d+ ms, p99 \d+ ms; \d+ tokens\/s; cache hits \d+ % of prompt tokens; shed 0, failed 0/);
    expect(stdout).toMatch(/routing decisions: .*hit \d+/);
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  });

  it('the main command over OpenAI-compatible engines: --engine openai --url (twice)', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const engines = [await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 1 }), await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 1 })];
    for (const engine of engines) cleanups.push(() => engine.close());
    const args = [build('demo.js'), '--registry', `file://${registry.dir}`, '--engine', 'openai', ...engines.flatMap((engine) => ['--url', engine.url])];
    const { stdout } = await run(process.execPath, args, { timeout: 60_000 });
    expect(stdout.match(/worker engine-[12] \(OpenAI-compatible engine at http:\/\/127\.0\.0\.1:\d+\/v1\) at shuttle:\/\/127\.0\.0\.1:\d+/g)).toHaveLength(2);
    expect(stdout).toMatch(/prefix-affinity: 144 requests in [\d.]+ s/);
    const rows = [...stdout.matchAll(/^\| (engine-[12]) \| (\d+) \| (\d+) \| (\d+) % \|$/gm)];
    expect(rows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(144);
    // Every request reached an engine as a streaming completion with the consumer's max tokens.
    expect(engines[0]!.requests.length + engines[1]!.requests.length).toBe(144);
    expect(engines[0]!.requests[0]).toMatchObject({ path: '/v1/completions', body: { model: 'm', stream: true, max_tokens: 48 } });
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  });

  it('the hello pair: a provider and a consumer that finds it through the registry', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const env = { ...process.env, SHUTTLE_REGISTRY: `file://${registry.dir}` };
    const provider = await startFixture('../../examples/hello/provider', { SHUTTLE_REGISTRY: `file://${registry.dir}` });
    cleanups.push(() => provider.stop());
    const { stdout } = await run(process.execPath, [build('hello/consumer.js')], { timeout: 30_000, env });
    expect(stdout).toMatch(new RegExp(`hello, shuttle \\(from worker ${provider.process.pid}\\)`));
    expect(stdout).toMatch(/bad input is refused: \[invalid argument\] hello needs a non-empty name/);
    expect(stdout).toMatch(/deadline enforced: \[deadline exceeded\]/);
    expect(stdout).toMatch(/2000 concurrent calls in \d+ ms/);
  });

  it('the plugin example routes every call to the consumer zone through the plugin balancer', async () => {
    const { stdout } = await run(process.execPath, [build('plugin/run.js')], { timeout: 30_000 });
    expect(stdout).toMatch(/consumer plugins: zone-affinity-plugin/);
    const served = [...stdout.matchAll(/in (\S+) served (\d+) calls/g)].map((match) => [match[1], Number(match[2])] as const);
    expect(served.filter(([zone]) => zone === 'us-west-2b')).toEqual([['us-west-2b', 0]]);
    expect(served.filter(([zone]) => zone === 'us-east-1a').reduce((sum, [, n]) => sum + n, 0)).toBe(60);
  });

  it('the grpc example: clients in JavaScript and Python call the worker with nothing but inference.proto', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const worker = await startFixture('../../examples/grpc/worker', { SHUTTLE_REGISTRY: `file://${registry.dir}` }, 10_000, [], ['--grpc-port', '0']);
    cleanups.push(() => worker.stop());
    const address = `127.0.0.1:${worker.announced['grpc'] as number}`;
    const expectAnswer = (stdout: string): void => {
      const answer = JSON.parse(stdout.trim().split('\n').at(-1)!) as { tokens: string[]; usage: Record<string, unknown>; embedding: number };
      expect(answer.tokens).toHaveLength(12);
      expect(answer.usage).toMatchObject({ worker: worker.announced['name'], outputTokens: 12 });
      expect(answer.embedding).toBe(8);
    };
    expectAnswer((await run(process.execPath, [build('grpc/client.js'), '--address', address], { timeout: 30_000 })).stdout);
    // Python: protoc generates the messages from the .proto; Debian's grpcio does the rest.
    const python = await tempDir();
    cleanups.push(python.remove);
    const examples = fileURLToPath(new URL('../../examples/grpc/', import.meta.url));
    await run('protoc', [`-I${examples}`, `--python_out=${python.dir}`, path.join(examples, 'inference.proto')]);
    await copyFile(path.join(examples, 'client.py'), path.join(python.dir, 'client.py'));
    expectAnswer((await run('/usr/bin/python3', ['client.py', address], { cwd: python.dir, timeout: 30_000 })).stdout);
  });
});
