import { execFile, spawn } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
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
  it('the README main command: three simulated GPU workers and a consumer fanning a chat workload out, the dashboard live while it runs', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const demo = spawn(process.execPath, [build('demo.js'), '--registry', `file://${registry.dir}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(async () => void demo.kill('SIGKILL'));
    let stdout = '';
    let dashboard: Promise<{ status: number; html: string }> | undefined;
    createInterface({ input: demo.stdout }).on('line', (line) => {
      stdout += `${line}\n`;
      const offered = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/dashboard) \(open it while the demo runs\)$/.exec(line);
      if (offered !== null) dashboard ??= fetch(offered[1]!).then(async (response) => ({ status: response.status, html: await response.text() }));
    });
    const code = await new Promise<number | null>((resolve) => demo.once('exit', resolve));
    expect(code).toBe(0);
    expect(await dashboard).toMatchObject({ status: 200, html: expect.stringContaining('<html') });
    expect(stdout.match(/worker (h100-a|a10-b|l4-c) \(.+ slots, .+ KV tokens\) at shuttle:\/\/127\.0\.0\.1:\d+/g)).toHaveLength(3);
    expect(stdout).toMatch(/prefix-affinity: 144 requests in [\d.]+ s/);
    // The closing table is drawn for a terminal: box lines, columns aligned.
    expect(stdout).toMatch(/┌─+┬─+┬─+┬─+┐\n│ worker +│ requests │ output tokens │ prompt cache hits │/);
    const rows = [...stdout.matchAll(/^│ (h100-a|a10-b|l4-c) +│ +(\d+) │ +(\d+) │ +(\d+) % │$/gm)];
    expect(rows.map((row) => row[1]).sort()).toEqual(['a10-b', 'h100-a', 'l4-c']);
    expect(new Set(rows.map((row) => row[0]!.length)).size).toBe(1);
    expect(rows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(144);
    expect(stdout).toMatch(/TTFT p50 \d+ ms, p99 \d+ ms \(after the first round \d+ ms\); \d+ tokens\/s; cache hits \d+ % of prompt tokens; shed 0, failed 0/);
    expect(stdout).toMatch(/routing decisions: .*hit \d+/);
    for (const branch of ['hit', 'spill', 'cold']) expect(stdout).toMatch(new RegExp(`^  ${branch} +\\S.*`, 'm'));
    expect(stdout).not.toMatch(/^\|/m);
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  }, 60_000);

  it('demo --compare: the same workload with round-robin on a fresh fleet, both side by side', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const { stdout } = await run(process.execPath, [build('demo.js'), '--registry', `file://${registry.dir}`, '--compare'], { timeout: 120_000 });
    expect(stdout).toMatch(/prefix-affinity: 144 requests in/);
    expect(stdout).toMatch(/round-robin: 144 requests in/);
    expect(stdout.match(/worker h100-a \(/g)).toHaveLength(2);
    expect(stdout).toMatch(/prefix-affinity vs round-robin \(ratios to prefix-affinity\):\n┌─+┬─+┬─+┐\n│ +│ +prefix-affinity │ +round-robin │/);
    expect(stdout).toMatch(/│ TTFT p99 +│ +\d+ ms │ +\d+ ms \(\d+\.\d\dx\) │/);
    expect(stdout).toMatch(/│ routing +│ .*hit \d+.* │ +pick 144 │/);
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  }, 120_000);

  it.each([
    [
      ['--loadbalance', 'nope'],
      /--loadbalance "nope" is not a balancer; use one of: consistent-hash, least-active, p2c, prefix-affinity, random, round-robin, shortest-response/,
    ],
    [['--nope'], /Unknown option '--nope'/],
    [['--engine', 'tgi'], /--engine must be sim or openai, got "tgi"/],
    [['--engine', 'openai'], /--engine openai needs --url/],
    [['--admin-port', '70000'], /--admin-port must be a port from 0 to 65535, got "70000"/],
  ])('demo %j fails before anything starts, naming the option and what is allowed', async (args, message) => {
    const failed = await run(process.execPath, [build('demo.js'), ...args], { timeout: 20_000 }).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 2, stdout: '' });
    const { stderr } = failed as { stderr: string };
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/Usage: node build\/examples\/demo\.js/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('demo --help prints the usage', async () => {
    const { stdout } = await run(process.execPath, [build('demo.js'), '--help'], { timeout: 20_000 });
    expect(stdout).toMatch(/^Usage: node build\/examples\/demo\.js \[options\]/);
    for (const option of ['--loadbalance', '--compare', '--registry', '--engine', '--url', '--admin-port', '--help']) expect(stdout).toContain(option);
  });

  it('the main command over OpenAI-compatible engines: --engine openai --url (twice)', async () => {
    const registry = await tempDir();
    cleanups.push(registry.remove);
    const engines = [
      await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 1 }),
      await startFakeEngine({ models: ['m'], tokens: 400, tokenDelayMs: 1 }),
    ];
    for (const engine of engines) cleanups.push(() => engine.close());
    const args = [build('demo.js'), '--registry', `file://${registry.dir}`, '--engine', 'openai', ...engines.flatMap((engine) => ['--url', engine.url])];
    const { stdout } = await run(process.execPath, args, { timeout: 60_000 });
    expect(stdout.match(/worker engine-[12] \(OpenAI-compatible engine at http:\/\/127\.0\.0\.1:\d+\/v1\) at shuttle:\/\/127\.0\.0\.1:\d+/g)).toHaveLength(2);
    expect(stdout).toMatch(/prefix-affinity: 144 requests in [\d.]+ s/);
    const rows = [...stdout.matchAll(/^│ (engine-[12]) +│ +(\d+) │ +(\d+) │ +(\d+) % │$/gm)];
    expect(rows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(144);
    // The consumer's warm start made one small embeddings call to each worker; then every
    // request reached an engine as a streaming completion with the consumer's max tokens.
    for (const engine of engines) expect(engine.requests.filter((request) => request.path === '/v1/embeddings')).toHaveLength(1);
    const completions = engines.flatMap((engine) => engine.requests.filter((request) => request.path !== '/v1/embeddings'));
    expect(completions).toHaveLength(144);
    for (const request of completions) expect(request).toMatchObject({ path: '/v1/completions', body: { model: 'm', stream: true, max_tokens: 48 } });
    expect(stdout).toMatch(/demo finished \(consumer exit code 0\)/);
  }, 60_000);

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
