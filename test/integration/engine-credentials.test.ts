import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from 'shuttle-rpc';
import { startEngineWorker } from 'shuttle-rpc/engine';
import type { LlmApi } from 'shuttle-rpc/inference';

/*
 * An engine URL with credentials in it (`http://user:password@host/v1`, basic auth in front of
 * an engine): the credentials go to the engine as an Authorization header and appear in no
 * error a worker throws or sends to its callers (errors quote the URL, and callers log them).
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function engine(answer: (request: http.IncomingMessage, response: http.ServerResponse) => void): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = http.createServer((request, response) => {
    seen.push(String(request.headers.authorization));
    request.resume();
    request.once('end', () => answer(request, response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())).then(() => server.closeAllConnections()));
  return { port: (server.address() as AddressInfo).port, seen };
}

const BASIC = `Basic ${Buffer.from('ops:s3cret pw').toString('base64')}`;

describe('an engine URL with credentials', () => {
  it('sends them as basic auth and shows them in no error: not when the engine cannot list its models, not to a caller', async () => {
    const failing = await engine((_request, response) => response.writeHead(500).end('down'));
    const refused = await startEngineWorker({
      url: `http://ops:s3cret%20pw@127.0.0.1:${failing.port}/v1`,
      metricsUrl: false,
      healthUrl: false,
      server: { host: '127.0.0.1', port: 0, log: false },
    }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(refused?.message).toContain(`http://127.0.0.1:${failing.port}/v1/models`);
    expect(refused?.message).not.toContain('s3cret');
    expect(failing.seen).toEqual([BASIC]);

    const broken = await engine((request, response) => {
      if (request.url === '/v1/models') response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[{"id":"m"}]}');
      else response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"engine fell over"}}');
    });
    const worker = await startEngineWorker({
      url: `http://ops:s3cret%20pw@127.0.0.1:${broken.port}/v1`,
      metricsUrl: false,
      healthUrl: false,
      server: { host: '127.0.0.1', port: 0, log: false },
    });
    cleanups.push(() => worker.close());
    const client = await createClient({ registry: `shuttle://127.0.0.1:${worker.server.port}`, config: false, cluster: 'failfast' });
    cleanups.push(() => client.close());
    const failure = (await client
      .proxy<LlmApi>('inference.LLM')
      .embed({ text: 'p' })
      .then(
        () => undefined,
        (error: Error) => error,
      )) as Error | undefined;
    expect(failure?.message).toContain(`127.0.0.1:${broken.port}/v1/embeddings`);
    expect(failure?.message).not.toContain('s3cret');
    expect(broken.seen).toEqual([BASIC, BASIC]);
  });

  it('refuses credentials in the metrics and health URLs (read with fetch, which refuses them), and quotes none of them', async () => {
    for (const key of ['metricsUrl', 'healthUrl'] as const) {
      const refused = await startEngineWorker({
        url: 'http://127.0.0.1:1/v1',
        models: ['m'],
        [key]: 'http://ops:s3cret@127.0.0.1:1/x',
        server: { host: '127.0.0.1', port: 0, log: false },
      }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(refused?.message).toMatch(
        new RegExp(`invalid engine worker ${key}: "http://\\*\\*\\*@127\\.0\\.0\\.1:1/x" \\(allowed: an http:// or https:// URL without user:password@`),
      );
    }
    const bad = await startEngineWorker({ url: 'ftp://ops:s3cret@127.0.0.1:1/v1', server: { log: false } }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(bad?.message).toContain('ftp://***@127.0.0.1:1/v1');
    expect(bad?.message).not.toContain('s3cret');
  });
});
