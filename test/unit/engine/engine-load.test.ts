import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import parsePrometheusText from 'parse-prometheus-text-format';
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

  it('bounds a poll in time: a /metrics that trickles forever fails the poll after its interval (1 s at least), reported once', async () => {
    const url = await serve((response) => {
      response.write('vllm:num_requests_running 1\n');
      const timer = setInterval(() => response.write('# still going\n'), 20);
      response.once('close', () => clearInterval(timer));
    });
    const errors: Error[] = [];
    const load = new EngineLoad(url, undefined, 200, (error) => errors.push(error));
    const started = performance.now();
    await load.start();
    const took = performance.now() - started;
    load.stop();
    expect(took).toBeGreaterThan(900);
    expect(took).toBeLessThan(3000);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(`cannot read engine metrics from ${url}`);
  });

  it('reads the families it needs out of a 4 MiB answer without stalling the event loop (it parses only their lines)', async () => {
    let other = '';
    for (let i = 0; other.length < MAX_METRICS_BYTES - 4096; i++)
      other += `vllm:e2e_request_latency_seconds_bucket{engine="0",model_name="m",le="${i}",finished_reason="stop"} ${i}\n`;
    const url = await serve((response) =>
      response.end(`# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 3\n${other}vllm:num_requests_waiting 2\n`),
    );
    const errors: Error[] = [];
    const load = new EngineLoad(url, undefined, 60_000, (error) => errors.push(error));
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    await load.start();
    delay.disable();
    load.stop();
    expect(errors).toEqual([]);
    expect(load.current).toMatchObject({ running: 3, waiting: 2 });
    // A machine this busy slows both, so the bound is the time a full parse of the same text takes
    // here and now, and not a fixed figure: reading every line stalls the loop for about that long.
    const fullParseStarted = performance.now();
    parsePrometheusText(other);
    const fullParseMs = performance.now() - fullParseStarted;
    expect(delay.max / 1e6, `the longest the event loop waited, ms (a full parse took ${fullParseMs.toFixed(0)} ms)`).toBeLessThan(
      Math.max(100, 0.6 * fullParseMs),
    );
  });

  it('fails the poll when the families it reads hold more than 64 KiB of lines', async () => {
    const url = await serve((response) => response.end('vllm:num_requests_running{model_name="m"} 3\n'.repeat(4096)));
    const errors: Error[] = [];
    const load = new EngineLoad(url, undefined, 60_000, (error) => errors.push(error));
    await load.start();
    load.stop();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/the metrics hold more than 65536 characters of the families read \(vllm:num_requests_running, /);
  });
});
