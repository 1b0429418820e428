import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineLoad, MAX_METRICS_BYTES } from '../../../src/engine/engine-load.js';

/*
 * The engine's /metrics is read from the network: a poll reads at most MAX_METRICS_BYTES of it,
 * and a larger answer is a failed poll (reported once), not memory held.
 */
let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

async function serve(answer: (response: http.ServerResponse) => void): Promise<string> {
  server = http.createServer((_, response) => answer(response));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

describe('EngineLoad', () => {
  it('reads the load from a /metrics answer', async () => {
    const url = await serve((response) => response.end('vllm:num_requests_running{model_name="m"} 3\nvllm:num_requests_waiting{model_name="m"} 2\n'));
    const errors: Error[] = [];
    const load = new EngineLoad(url, undefined, 60_000, (error) => errors.push(error));
    await load.start();
    load.stop();
    expect(errors).toEqual([]);
    expect(load.current).toMatchObject({ running: 3, waiting: 2 });
  });

  it(`fails the poll, and keeps nothing of it, when /metrics answers more than ${MAX_METRICS_BYTES} bytes`, async () => {
    const line = `# ${'x'.repeat(1023)}\n`;
    const url = await serve((response) => {
      // 32 MiB of comment lines, written as fast as the poller reads.
      let sent = 0;
      const more = (): void => {
        while (sent < 32 * 1024 && !response.destroyed) {
          sent++;
          if (!response.write(line)) return void response.once('drain', more);
        }
        response.end();
      };
      more();
    });
    const errors: Error[] = [];
    const load = new EngineLoad(url, undefined, 60_000, (error) => errors.push(error));
    await load.start();
    load.stop();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(`answered more than ${MAX_METRICS_BYTES} bytes of metrics`);
    expect(load.current).toEqual({});
  });
});
