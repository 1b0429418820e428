import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from 'shuttle-rpc/gateway';
import type { RouteEvent } from 'shuttle-rpc';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Urgent calls are not sent to a worker busy computing a prompt, every piece real: two simulated
 * GPU worker processes over the file registry, and two gateways in this process balancing
 * round-robin (one with the client's default `urgentPriority`, one with the rule off). A long
 * prompt keeps one worker in prefill for about a second; short requests sent meanwhile
 * alternate between the workers, unless they are `x-priority: high`.
 */
let dir: { dir: string; remove(): Promise<void> };
const workers: Child[] = [];
const routes = new Map<Gateway, RouteEvent[]>();
let urgent: Gateway;
let plain: Gateway;

async function gatewayWith(urgentPriority: false | undefined): Promise<Gateway> {
  const events: RouteEvent[] = [];
  const gateway = await startGateway({
    port: 0,
    client: {
      registry: `file://${dir.dir}`,
      config: false,
      log: false,
      onRoute: (event) => void events.push(event),
      ...(urgentPriority === undefined ? {} : { urgentPriority }),
    },
    loadbalance: 'round-robin',
    log: false,
  });
  routes.set(gateway, events);
  await gateway.client.ready();
  await waitUntil(() => gateway.client.providers().length === 2, 'the gateway to see both workers', 5000, 50);
  return gateway;
}

beforeAll(async () => {
  dir = await tempDir();
  for (const name of ['a', 'b']) {
    workers.push(await startFixture('../../examples/inference/worker', { SHUTTLE_REGISTRY: `file://${dir.dir}` }, 10_000, [], ['--name', name]));
  }
  urgent = await gatewayWith(undefined);
  plain = await gatewayWith(false);
}, 30_000);

afterAll(async () => {
  await urgent?.close();
  await plain?.close();
  for (const worker of workers) await worker.stop();
  await dir?.remove();
});

/**
 * About 16,000 prompt tokens: eight steps of the simulated engine's 2,048-token budget, about a
 * second. Each run's is new, so no worker has it cached.
 */
let runs = 0;
const longPrompt = (): string => `run ${++runs}: ${'the quarterly report on the northern warehouses, '.repeat(1300)}`;

function chat(gateway: Gateway, content: string, maxTokens: number, priority?: string): Promise<Response> {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(priority === undefined ? {} : { 'x-priority': priority }) },
    body: JSON.stringify({ model: 'llama-3-8b', messages: [{ role: 'user', content }], max_tokens: maxTokens }),
  });
}

/**
 * Starts a long prompt through `gateway` and, once it is routed, `count` short requests at once;
 * returns the worker address of the long one and of each short one (in the order routed).
 */
async function shortAfterLong(gateway: Gateway, count: number, priority?: string): Promise<{ long: string; short: string[] }> {
  const events = routes.get(gateway)!;
  const before = events.length;
  let longDone = false;
  const long = chat(gateway, longPrompt(), 4).then(async (response) => {
    expect(response.status).toBe(200);
    await response.json();
    longDone = true;
  });
  await waitUntil(() => events.length > before, 'the long prompt to be routed', 5000, 5);
  const shorts = Array.from({ length: count }, (_, i) =>
    chat(gateway, `question ${i}?`, 2, priority).then(async (response) => {
      expect(response.status).toBe(200);
      await response.json();
    }),
  );
  await waitUntil(() => events.length > before + count, 'the short requests to be routed', 5000, 5);
  // Every short request was routed while the long one was still computing its prompt.
  expect(longDone).toBe(false);
  await Promise.all([long, ...shorts]);
  return {
    long: events[before]!.decision.provider.address,
    short: events.slice(before + 1, before + 1 + count).map((event) => event.decision.provider.address),
  };
}

describe('urgent calls and a worker computing a long prompt', () => {
  it('without the rule, high-priority requests alternate between the workers like any other', async () => {
    const { long, short } = await shortAfterLong(plain, 3, 'high');
    expect(short).toContain(long);
  });

  it('with it, high-priority requests go to the other worker every time; normal ones still alternate', async () => {
    const high = await shortAfterLong(urgent, 3, 'high');
    expect(high.short.every((address) => address !== high.long)).toBe(true);
    const normal = await shortAfterLong(urgent, 3);
    expect(normal.short).toContain(normal.long);
  });
});
