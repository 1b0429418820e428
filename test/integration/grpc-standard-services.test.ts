import { execFile, spawn } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * The standard gRPC services, seen by a client that knows nothing but the reflection protocol:
 * examples/grpc/reflect.py (grpcurl's list / describe / call, on Debian's python3-grpcio, as
 * grpcurl is not packaged) against the example worker, which is given no .proto by the client.
 */
const run = promisify(execFile);
const cleanups: Array<() => Promise<unknown>> = [];
let python = '';
let worker: Child;
let address = '';

const reflect = async (...args: string[]): Promise<string> =>
  (await run('/usr/bin/python3', ['reflect.py', address, ...args], { cwd: python, timeout: 20_000 })).stdout;
const lines = (stdout: string): unknown[] =>
  stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as unknown);

beforeAll(async () => {
  const dir = await tempDir();
  cleanups.push(dir.remove);
  python = dir.dir;
  // The reflection protocol's messages, generated as reflect.py's docstring says.
  const reflection = fileURLToPath(new URL('../../node_modules/@grpc/reflection/build/proto/grpc/reflection/', import.meta.url));
  await copyFile(path.join(reflection, 'v1/reflection.proto'), path.join(python, 'reflection_v1.proto'));
  await copyFile(path.join(reflection, 'v1alpha/reflection.proto'), path.join(python, 'reflection_v1alpha.proto'));
  await run('protoc', [`-I${python}`, `--python_out=${python}`, 'reflection_v1.proto', 'reflection_v1alpha.proto'], { cwd: python });
  await copyFile(fileURLToPath(new URL('../../examples/grpc/reflect.py', import.meta.url)), path.join(python, 'reflect.py'));
  worker = await startFixture('../../examples/grpc/worker', {}, 10_000, [], ['--grpc-port', '0']);
  cleanups.push(() => worker.stop());
  address = `127.0.0.1:${worker.announced['grpc'] as number}`;
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('server reflection', () => {
  it.each([['v1'], ['v1alpha']])('%s lists the exported service and the health service', async (version) => {
    const listed = (await reflect('list', ...(version === 'v1alpha' ? ['--v1alpha'] : []))).trim().split('\n');
    expect(listed.sort()).toEqual(['grpc.health.v1.Health', 'inference.LLM']);
  });

  it('describes inference.LLM as its .proto declares it', async () => {
    expect((await reflect('describe', 'inference.LLM')).trim().split('\n')).toEqual([
      'rpc Generate (inference.GenerateRequest) returns (stream inference.Token)',
      'rpc Embed (inference.EmbedRequest) returns (inference.Embedding)',
    ]);
  });

  it('a unary and a streaming rpc called from the descriptors alone', async () => {
    const [embedding] = lines(await reflect('call', 'inference.LLM/Embed', '{"text": "hello"}')) as { values: number[] }[];
    expect(embedding!.values).toHaveLength(8);
    const tokens = lines(await reflect('call', 'inference.LLM/Generate', '{"prompt": "hi", "max_tokens": 5}')) as { text: string }[];
    expect(tokens).toHaveLength(5);
    expect(tokens.every((token) => typeof token.text === 'string' && token.text !== '')).toBe(true);
  });

  it('a .proto map field is served as protoc names it, so strict clients load the file (grpc.health.v1 List)', async () => {
    const [listed] = lines(await reflect('call', 'grpc.health.v1.Health/List', '{}')) as { statuses: Record<string, { status: string }> }[];
    expect(listed!.statuses).toEqual({ '': { status: 'SERVING' }, 'inference.LLM': { status: 'SERVING' } });
  });
});

describe('grpc.health.v1.Health', () => {
  it('Check: SERVING overall and per exported service; an unknown service is NOT_FOUND', async () => {
    expect(lines(await reflect('call', 'grpc.health.v1.Health/Check', '{"service": ""}'))).toEqual([{ status: 'SERVING' }]);
    expect(lines(await reflect('call', 'grpc.health.v1.Health/Check', '{"service": "inference.LLM"}'))).toEqual([{ status: 'SERVING' }]);
    await expect(reflect('call', 'grpc.health.v1.Health/Check', '{"service": "no.Such"}')).rejects.toMatchObject({
      stderr: expect.stringMatching(/NOT_FOUND/),
    });
  });

  it('while the worker drains: Watch hears NOT_SERVING, a new Check answers it, the stream in flight completes, then the worker exits', async () => {
    const drained = await startFixture('../../examples/grpc/worker', {}, 10_000, [], ['--grpc-port', '0']);
    cleanups.push(() => drained.stop());
    const target = `127.0.0.1:${drained.announced['grpc'] as number}`;
    const follow = (...args: string[]) => {
      const child = spawn('/usr/bin/python3', ['reflect.py', target, ...args], { cwd: python, stdio: ['ignore', 'pipe', 'pipe'] });
      const got: unknown[] = [];
      const waiters: Array<() => void> = [];
      createInterface({ input: child.stdout }).on('line', (line) => {
        got.push(JSON.parse(line));
        for (const wake of waiters.splice(0)) wake();
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      cleanups.push(async () => void child.kill('SIGKILL'));
      const atLeast = async (n: number): Promise<void> => {
        while (got.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      };
      return { got, exited, atLeast };
    };
    const watch = follow('call', 'grpc.health.v1.Health/Watch', '{"service": "inference.LLM"}');
    await watch.atLeast(1);
    expect(watch.got).toEqual([{ status: 'SERVING' }]);
    // ~6 ms a token: a stream of a few seconds, in flight when the drain starts.
    const stream = follow('call', 'inference.LLM/Generate', '{"prompt": "drain me", "max_tokens": 400}');
    await stream.atLeast(1);
    const exited = new Promise<number | null>((resolve) => drained.process.once('exit', resolve));
    drained.process.kill('SIGTERM');
    await watch.atLeast(2);
    expect(watch.got[1]).toEqual({ status: 'NOT_SERVING' });
    const checked = (
      await run('/usr/bin/python3', ['reflect.py', target, 'call', 'grpc.health.v1.Health/Check', '{"service": ""}'], { cwd: python, timeout: 20_000 })
    ).stdout;
    expect(lines(checked)).toEqual([{ status: 'NOT_SERVING' }]);
    expect(await stream.exited).toBe(0);
    expect(stream.got).toHaveLength(400);
    expect(await exited).toBe(0);
  });
});
