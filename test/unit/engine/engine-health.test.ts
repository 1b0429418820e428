import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EngineHealth } from '../../../src/engine/engine-health.js';
import { waitUntil } from '../../helpers/wait.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A health endpoint answering `status.value`, counting the checks. */
async function endpoint(status: { value: number }) {
  const seen = { checks: 0 };
  const server = http.createServer((_request, response) => {
    seen.checks++;
    response.writeHead(status.value).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.close();
    server.closeAllConnections();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, seen };
}

function watch(url: string) {
  const changes: boolean[] = [];
  const health = new EngineHealth(url, 50, (down) => changes.push(down));
  cleanups.push(() => health.stop());
  void health.start();
  return { health, changes };
}

describe('EngineHealth', () => {
  it('is down after two 5xx in a row, and up at the first 2xx; each change is told once', async () => {
    const status = { value: 200 };
    const { url, seen } = await endpoint(status);
    const { health, changes } = watch(url);
    await waitUntil(() => seen.checks >= 2, 'two checks');
    expect(health.down).toBe(false);
    status.value = 503;
    const before = seen.checks;
    await waitUntil(() => health.down, 'down');
    // One 503 after the engine was seen up is a blip; the second makes it down.
    expect(seen.checks - before).toBeGreaterThanOrEqual(2);
    status.value = 200;
    await waitUntil(() => !health.down, 'up again');
    expect(changes).toEqual([true, false]);
  });

  it('says nothing on a 4xx other than 404 and 405 (a check behind authentication): the state stays as it was', async () => {
    const status = { value: 401 };
    const { url, seen } = await endpoint(status);
    const { health } = watch(url);
    await waitUntil(() => seen.checks >= 4, 'four checks');
    expect(health.down).toBe(false);
  });

  it('stops asking an engine without the endpoint (404), which counts as up, even after it was down', async () => {
    const status = { value: 500 };
    const { url, seen } = await endpoint(status);
    const { health } = watch(url);
    await waitUntil(() => health.down, 'down');
    status.value = 404;
    await waitUntil(() => !health.down, 'up');
    const checks = seen.checks;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen.checks).toBe(checks);
  });

  it('counts an engine that fails its first check as down at once: a worker started before its engine is ready attracts no calls', async () => {
    const { url, seen } = await endpoint({ value: 503 });
    let checksWhenDown: number | undefined;
    const health = new EngineHealth(url, 50, () => (checksWhenDown = seen.checks));
    cleanups.push(() => health.stop());
    await health.start();
    expect(health.down).toBe(true);
    expect(checksWhenDown).toBe(1);
  });

  it('counts an engine that refuses connections (restarting) as down', async () => {
    const { url } = await endpoint({ value: 200 });
    cleanups.splice(0).forEach((cleanup) => cleanup());
    const { health } = watch(url);
    await waitUntil(() => health.down, 'down');
  });
});
