import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeEngine, type FakeEngine } from 'shuttle-rpc/testing';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * `shuttle gateway` stopped by an operator (SIGTERM) while token streams run through it, every
 * piece a real process on loopback: a fake engine, a `shuttle worker` in front of it and the
 * gateway over a file registry. A stream that ends within the drain time ends as usual
 * (`[DONE]`); one still running at `--drain-timeout` gets a last SSE error event and a clean
 * end of the response, never a reset; a request that comes meanwhile is answered 503 with
 * Retry-After; the process exits 0.
 */
const CLI = '../../../dist/cli/main';
let registry: { dir: string; remove(): Promise<void> };
let engine: FakeEngine;
const children: Child[] = [];

beforeAll(async () => {
  registry = await tempDir();
  engine = await startFakeEngine({ models: ['fake-model'], tokens: 400, tokenDelayMs: 20 });
  const env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
  const worker = await startFixture(CLI, env, 15_000, [], ['worker', '--url', engine.url, '--slots', '4', '--metrics-url', 'none']);
  children.push(worker);
  // The ready line says where the worker announced itself.
  expect(worker.announced['registry']).toBe(`file://${registry.dir}`);
}, 30_000);

afterAll(async () => {
  for (const child of children.reverse()) await child.stop();
  await engine?.close();
  await registry?.remove();
});

/** What an HTTP client read: the status, headers and body, and whether the response ended cleanly or was cut. */
interface Read {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ended: 'complete' | 'cut';
}

function request(url: string, method: string, body?: unknown, onFirstData?: () => void): Promise<Read> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (text === '') onFirstData?.();
        text += chunk;
      });
      response.on('error', () => {});
      response.on('close', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text, ended: response.complete ? 'complete' : 'cut' }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function stream(url: string, maxTokens: number, onFirstData: () => void): Promise<Read> {
  return request(
    `${url}/v1/chat/completions`,
    'POST',
    { model: 'fake-model', stream: true, max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] },
    onFirstData,
  );
}

describe('shuttle gateway on SIGTERM', () => {
  it('lets streams finish within --drain-timeout, ends the rest with an error event, answers new requests 503, and exits 0', async () => {
    const env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
    const gateway = await startFixture(CLI, env, 15_000, [], ['gateway', '--port', '0', '--drain-timeout', '1500']);
    children.push(gateway);
    expect(gateway.announced['registry']).toBe(`file://${registry.dir}`);
    let stderr = '';
    gateway.process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => gateway.process.once('exit', (code) => resolve(code)));
    let short!: Promise<Read>;
    let long!: Promise<Read>;
    let started = 0;
    const bothStarted = new Promise<void>((resolve) => {
      const one = (): void => void (++started === 2 && resolve());
      // 30 tokens (0.6 s) end within the drain; 400 (8 s) do not.
      short = stream(gateway.url, 30, one);
      long = stream(gateway.url, 400, one);
    });
    await bothStarted;
    const signalledAt = Date.now();
    gateway.process.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await request(`${gateway.url}/v1/models`, 'GET');
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(JSON.parse(refused.body).error.code).toBe('gateway_shutting_down');

    const finished = await short;
    expect(finished.ended).toBe('complete');
    expect(finished.body.trimEnd().endsWith('data: [DONE]')).toBe(true);

    const cut = await long;
    expect(cut.ended).toBe('complete');
    expect(cut.status).toBe(200);
    const events = cut.body.trim().split('\n\n');
    const last = JSON.parse(events.at(-1)!.slice('data: '.length)) as { error: { code: string; message: string } };
    expect(last.error.code).toBe('gateway_shutting_down');
    expect(last.error.message).toMatch(/drain time \(drainTimeoutMs 1500 ms\) ran out/);
    expect(events.length).toBeLessThan(400);

    expect(await exit).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(6000);
    expect(stderr).toMatch(/1 of 2 open requests were still running at drainTimeoutMs \(1500 ms\)/);
  }, 30_000);

  it('holds many streams open at once without a listener warning', async () => {
    const env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
    const gateway = await startFixture(CLI, env, 15_000, [], ['gateway', '--port', '0']);
    children.push(gateway);
    let stderr = '';
    gateway.process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const reads = await Promise.all(Array.from({ length: 16 }, () => stream(gateway.url, 20, () => {})));
    for (const read of reads) expect(read.body.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(stderr).not.toMatch(/MaxListenersExceededWarning/);
  }, 30_000);
});
