import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The `shuttle` command, run as an operator runs it (the package's bin, in its own process)
 * against a running example provider: the simulated GPU worker of examples/inference.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = root + (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { bin: { shuttle: string } }).bin.shuttle;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let registry: { dir: string; remove(): Promise<void> };
let worker: Child;
let env: NodeJS.ProcessEnv;

function shuttle(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  registry = await tempDir();
  env = { ...process.env, SHUTTLE_REGISTRY: `file://${registry.dir}` };
  worker = await startFixture(
    '../../examples/inference/worker',
    { SHUTTLE_REGISTRY: `file://${registry.dir}` },
    10_000,
    [],
    ['--name', 'cli-worker', '--gpu', 'L4', '--slots', '4'],
  );
});
afterAll(async () => {
  await worker?.stop();
  await registry?.remove();
});

describe('shuttle ls / describe', () => {
  it('ls lists the service, its provider, metadata and live load as a table', async () => {
    const { code, stdout } = await shuttle('ls');
    expect(code).toBe(0);
    expect(stdout).toMatch(/│ service\s+│ version\s+│ group\s+│ provider\s+│ metadata\s+│ load/);
    expect(stdout).toMatch(new RegExp(`inference\\.LLM\\s+│ 1\\.0\\.0\\s+│ -\\s+│ ${worker.host.replaceAll('.', '\\.')}:${worker.port} tcp`));
    expect(stdout).toMatch(/name=cli-worker/);
    expect(stdout).toMatch(/gpu=L4/);
    expect(stdout).toMatch(/running \d+, waiting \d+, KV \d+ %, \d+ tok\/s/);
  });

  it('ls --json gives the records for scripts', async () => {
    const { code, stdout } = await shuttle('ls', '--json', '--registry', `file://${registry.dir}`);
    expect(code).toBe(0);
    const listed = JSON.parse(stdout) as { registry: string; services: Array<{ service: string; providers: Array<Record<string, unknown>> }> };
    expect(listed.registry).toBe(`file://${registry.dir}`);
    expect(listed.services.map((entry) => entry.service)).toEqual(['inference.LLM']);
    expect(listed.services[0]!.providers[0]).toMatchObject({ port: worker.port, protocol: 'tcp', metadata: { name: 'cli-worker', gpu: 'L4', slots: 4 } });
    expect(listed.services[0]!.providers[0]!['load']).toMatchObject({ running: 0, draining: false });
  });

  it('describe shows the methods, their kind and the providers', async () => {
    const { code, stdout } = await shuttle('describe', 'inference.LLM');
    expect(code).toBe(0);
    expect(stdout).toMatch(/│ embed\s+│ unary\s+│ yes\s+│ 1\.0\.0/);
    expect(stdout).toMatch(/│ generate\s+│ server stream\s+│ no\s+│ 1\.0\.0/);
    expect(stdout).toMatch(new RegExp(`providers of inference\\.LLM:\\n  ${worker.host.replaceAll('.', '\\.')}:${worker.port} tcp`));
  });
});

describe('shuttle call / bench', () => {
  it('call: a unary result as JSON', async () => {
    const { code, stdout } = await shuttle('call', 'inference.LLM.embed', '{"text":"hello"}', '--json');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { values: number[] };
    expect(result.values).toHaveLength(8);
    expect(result.values[0]).toBeGreaterThan(0);
  });

  it('call: a stream prints each chunk as it arrives, then the trailer', async () => {
    const human = await shuttle('call', 'inference.LLM.generate', '{"prompt":"tell me","maxTokens":5}');
    expect(human.code).toBe(0);
    expect(
      human.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { text: string }),
    ).toHaveLength(5);
    expect(human.stderr).toMatch(
      /\(5 chunks; trailer \{"worker":"cli-worker","promptTokens":\d+,"cachedTokens":\d+,"outputTokens":5,"finishReason":"length"\}\)/,
    );
    const json = await shuttle('call', 'inference.LLM.generate', '{"prompt":"tell me","maxTokens":3}', '--json');
    const lines = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.slice(0, 3).every((line) => typeof (line['chunk'] as { text?: unknown }).text === 'string')).toBe(true);
    expect(lines[3]).toMatchObject({ end: { chunks: 3, trailer: { worker: 'cli-worker', outputTokens: 3 } } });
  });

  it('call: Ctrl-C cancels a running stream (exit 130) and frees the worker', async () => {
    const child = spawn(process.execPath, [bin, 'call', 'inference.LLM.generate', '{"prompt":"a long story","maxTokens":1000}'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => createInterface({ input: child.stdout }).once('line', () => resolve()));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/cancelled inference\.LLM\.generate/);
    // The cancel reached the engine: the worker's published load goes back to nothing running.
    let running = -1;
    const idle = async (): Promise<boolean> => {
      const listed = JSON.parse((await shuttle('ls', '--json')).stdout) as { services: Array<{ providers: Array<{ load?: { running: number } }> }> };
      running = listed.services[0]!.providers[0]!.load?.running ?? -1;
      return running === 0;
    };
    // Each check runs the CLI: every 200 ms is often enough.
    await waitUntil(idle, () => `the worker to publish nothing running (last published: ${running})`, 5000, 200);
  });

  it('bench: a bounded load with a latency summary', async () => {
    const { code, stdout } = await shuttle('bench', 'inference.LLM.embed', '{"text":"x"}', '--requests', '60', '--concurrency', '4', '--json');
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as { calls: number; ok: number; failed: Record<string, number>; latencyMs: { p50: number; p99: number } };
    expect(summary).toMatchObject({ calls: 60, ok: 60, failed: {} });
    expect(summary.latencyMs.p50).toBeGreaterThan(0);
    expect(summary.latencyMs.p99).toBeGreaterThanOrEqual(summary.latencyMs.p50);
    const streaming = await shuttle('bench', 'inference.LLM.generate', '{"prompt":"p","maxTokens":2}', '-n', '6', '-c', '3');
    expect(streaming.code).toBe(0);
    expect(streaming.stdout).toMatch(/│ calls\s+│ 6 \(6 ok, 0 failed\)/);
    expect(streaming.stdout).toMatch(/│ first chunk p50 \/ p99\s+│ [\d.]+ ms \/ [\d.]+ ms/);
  });
});

describe('shuttle call --transport grpc', () => {
  let grpcRegistry: { dir: string; remove(): Promise<void> };
  let grpcWorker: Child;
  beforeAll(async () => {
    grpcRegistry = await tempDir();
    grpcWorker = await startFixture('../../examples/grpc/worker', { SHUTTLE_REGISTRY: `file://${grpcRegistry.dir}` }, 10_000, [], ['--grpc-port', '0']);
  });
  afterAll(async () => {
    await grpcWorker?.stop();
    await grpcRegistry?.remove();
  });

  it('calls the .proto-declared rpcs of examples/grpc by their .proto names, learnt by server reflection', async () => {
    const embed = await shuttle('call', 'inference.LLM.Embed', '{"text":"hello"}', '--transport', 'grpc', '--json', '--registry', `file://${grpcRegistry.dir}`);
    expect(embed.stderr).toBe('');
    expect(embed.code).toBe(0);
    expect((JSON.parse(embed.stdout) as { values: number[] }).values).toHaveLength(8);
    // Field names as the .proto writes them (max_tokens), as grpcurl takes them.
    const generate = await shuttle(
      'call',
      'inference.LLM.Generate',
      '{"prompt":"hi","max_tokens":3}',
      '--transport',
      'grpc',
      '--registry',
      `file://${grpcRegistry.dir}`,
    );
    expect(generate.code).toBe(0);
    expect(generate.stdout.trim().split('\n')).toHaveLength(3);
    expect(generate.stderr).toMatch(/\(3 chunks; trailer \{"worker":"grpc-worker-\d+".*"outputTokens":3,"finishReason":"length"\}\)/);
  });

  it('calls a gRPC server with no reflection with --proto FILE, and without it says to pass one', async () => {
    const plain = await startFixture('plain-grpc-server');
    try {
      const without = await shuttle('call', 'test.Echo.Add', '{"a":1,"b":2}', '--transport', 'grpc', '--registry', plain.url);
      expect(without.code).toBe(1);
      expect(without.stderr).toMatch(/no reflection for test\.Echo; if a \.proto declares the service, pass it with --proto FILE/);
      const proto = fileURLToPath(new URL('../fixtures/grpc.proto', import.meta.url));
      const withProto = await shuttle('call', 'test.Echo.Add', '{"a":1,"b":2}', '--transport', 'grpc', '--proto', proto, '--json', '--registry', plain.url);
      expect(withProto.stderr).toBe('');
      expect(JSON.parse(withProto.stdout)).toEqual({ sum: 3 });
    } finally {
      await plain.stop();
    }
  });

  it('--proto without --transport grpc is a usage error', async () => {
    const { code, stderr } = await shuttle('call', 'inference.LLM.embed', '{"text":"x"}', '--proto', 'x.proto', '--registry', `file://${grpcRegistry.dir}`);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--proto is for --transport grpc/);
  });
});

describe('shuttle gateway', () => {
  it('serves the OpenAI API over the simulated workers too', async () => {
    const gateway = await startFixture('../../../dist/cli/main', { SHUTTLE_REGISTRY: `file://${registry.dir}` }, 15_000, [], ['gateway', '--port', '0']);
    try {
      const models = (await (await fetch(`${gateway.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
      expect(models.data.map((model) => model.id)).toEqual(['llama-3-8b']);
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('x-shuttle-worker')).toBe('cli-worker');
      const answer = (await response.json()) as {
        choices: Array<{ message: { content: string }; finish_reason: string }>;
        usage: { completion_tokens: number };
      };
      expect(answer.choices[0]!.message.content.length).toBeGreaterThan(0);
      expect(answer.usage.completion_tokens).toBe(5);
      expect(answer.choices[0]!.finish_reason).toBe('length');
    } finally {
      await gateway.stop();
    }
  });
});

describe('shuttle errors and help', () => {
  it.each([
    [['call', 'inference.LLM.nope', '{}'], 2, /inference\.LLM has no method "nope"; its methods: embed, generate/],
    [['call', 'inference.LLM.embed', '{bad'], 2, /the request must be JSON .*quote it for the shell/],
    [['call', 'inferenceLLM', '{}'], 2, /expected SERVICE\.METHOD, e\.g\. inference\.LLM\.generate/],
    [['describe', 'inference.llm'], 1, /\[not found\] no provider of inference\.llm .*\(registered services: inference\.LLM\)/],
    [
      ['ls', '--registry', 'shuttle://127.0.0.1:9'],
      1,
      /the direct registry shuttle:\/\/127\.0\.0\.1:9 cannot list its services; name one: shuttle describe SERVICE/,
    ],
    [
      ['ls', '--registry', 'ftp://x'],
      1,
      /invalid --registry: "ftp:\/\/x" \(allowed: a URL whose scheme is a registered registry \(memory:\/\/, shuttle:\/\/, file:\/\/, etcd:\/\/\)/,
    ],
    [['bench', 'inference.LLM.embed', '{}', '--requests', '0'], 2, /expected a positive integer, got "0"/],
    [['frobnicate'], 2, /unknown command 'frobnicate'/],
    [['worker', '--engine', 'openai'], 2, /required option '--url <url>' not specified/],
    [['worker', '--engine', 'tgi', '--url', 'http://127.0.0.1:9/v1'], 2, /argument 'tgi' is invalid\. Allowed choices are openai/],
    [['worker', '--url', 'ftp://x'], 1, /invalid engine worker url: "ftp:\/\/x" \(allowed: an http:\/\/ or https:\/\/ URL/],
    [
      ['worker', '--url', 'http://127.0.0.1:9/v1'],
      1,
      /cannot list the engine's models at http:\/\/127\.0\.0\.1:9\/v1\/models \(\[unavailable\] .+\); is the engine up\? Name them with --model/,
    ],
    [['worker', '--url', 'http://127.0.0.1:9/v1', '--metrics', 'runing=x'], 2, /--metrics: engine metrics: unknown field "runing" \(allowed: running, waiting/],
    [['worker', '--url', 'http://127.0.0.1:9/v1', '--metrics', 'tgi'], 2, /--metrics must be auto, vllm, sglang or field=name\[,name\];…/],
    [['gateway', '--port', '70000'], 2, /expected a port from 0 to 65535, got "70000"/],
    [
      ['gateway', '--port', '0', '--cors-origin', 'app.example.com'],
      2,
      /--cors-origin: shuttle-rpc: invalid gateway cors\.origins entry: "app\.example\.com" \(allowed: "\*" or an origin such as "https:\/\/app\.example\.com"/,
    ],
    [
      ['worker', '--url', 'http://127.0.0.1:9/v1', '--max-buffered-answer-bytes', '1000'],
      2,
      /--max-buffered-answer-bytes <n>' argument '1000' is invalid\. expected bytes from 1048576 \(1 MiB\) to 68719476736 \(64 GiB\), got "1000"/,
    ],
  ])('shuttle %j exits %i with a message that says what to do', async (args, exitCode, message) => {
    const { code, stderr } = await shuttle(...args);
    expect(code).toBe(exitCode);
    expect(stderr).toMatch(message);
  });

  it('gateway with an admin port that is taken stops, naming the cause, instead of serving without its admin', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const { code, stderr } = await shuttle('gateway', '--port', '0', '--admin-port', String((taken.address() as net.AddressInfo).port));
      expect(code).toBe(1);
      expect(stderr).toMatch(/EADDRINUSE/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('a reader that closes the pipe before the output (shuttle ls | head -0) ends the command quietly', async () => {
    const child = spawn(process.execPath, [bin, 'ls'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it('gateway with an empty --api-key (an unset variable) refuses to start', async () => {
    const { code, stderr } = await shuttle('gateway', '--port', '0', '--api-key', '');
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/invalid gateway apiKey: "" \(allowed: a non-empty string/);
  });

  it("--version prints the package's version; after a command, --version is the service's", async () => {
    const { version } = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const run = await shuttle(flag);
      expect([run.code, run.stdout]).toEqual([0, `${version}\n`]);
    }
    const wrong = await shuttle('call', 'inference.LLM.embed', '{"text":"hello"}', '--json', '--version', '9.9.9', '--timeout', '3000');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/inference\.LLM:9\.9\.9/);
    const right = await shuttle('call', 'inference.LLM.embed', '{"text":"hello"}', '--json', '--version', '1.0.0');
    expect(right.code).toBe(0);
  });

  it('--help everywhere', async () => {
    const top = await shuttle('--help');
    expect(top.code).toBe(0);
    for (const command of ['ls', 'describe', 'call', 'bench', 'worker', 'gateway']) expect(top.stdout).toMatch(new RegExp(`\\n  ${command}\\b`));
    const call = await shuttle('call', '--help');
    expect(call.code).toBe(0);
    expect(call.stdout).toMatch(/Usage: shuttle call \[options\] <service\.method> \[request\]/);
    expect(call.stdout).toMatch(/--timeout <ms>/);
  });
});
