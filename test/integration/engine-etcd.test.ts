import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createClient } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startEngineWorker } from 'shuttle-rpc/engine';
import { etcdSuite } from '../helpers/etcd-suite.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * An engine that goes down and comes back, seen through a real etcd: its worker's draining load
 * reaches the consumers, and so does its return.
 */
const suite = etcdSuite();

describe('an engine worker on etcd whose engine goes down and comes back', () => {
  it('is seen draining by a consumer while its engine fails its health checks, and not once it answers again', async () => {
    let healthy = true;
    const engine = http.createServer((request, response) => {
      request.resume();
      request.once('end', () => {
        if (request.url === '/health') return void response.writeHead(healthy ? 200 : 503).end();
        if (request.url === '/metrics') return void response.end('vllm:num_requests_running 0\n');
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.end(`data: ${JSON.stringify({ choices: [{ text: 'hi', finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`);
      });
    });
    await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', resolve));
    suite.cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          engine.close(() => resolve());
          engine.closeAllConnections();
        }),
    );
    const registry = `etcd://${suite.etcd.endpoint.replace(/^https?:\/\//, '')}`;
    const worker = await startEngineWorker({
      url: `http://127.0.0.1:${(engine.address() as AddressInfo).port}/v1`,
      name: 'w',
      models: ['m'],
      metricsIntervalMs: 100,
      server: { registry, host: '127.0.0.1', port: 0, log: false },
      log: false,
    });
    suite.cleanups.push(() => worker.close());
    const client = await createClient({ registry, config: false, log: false });
    suite.cleanups.push(() => client.close());
    const llm = client.proxy<LlmApi>('inference.LLM');
    await client.ready();
    const draining = () => client.providers()[0]?.load?.draining;
    await waitUntil(() => draining() === false, 'the worker published its load', 5000);
    healthy = false;
    await waitUntil(() => draining() === true, 'the consumer sees the worker draining', 5000);
    healthy = true;
    await waitUntil(() => draining() === false, 'the consumer sees the worker back', 5000);
    let text = '';
    for await (const token of llm.generate({ prompt: 'p' })) text += token.text;
    expect(text).toBe('hi');
  });
});
