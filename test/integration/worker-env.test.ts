import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcCode, createClient } from 'shuttle-rpc';
import type { LlmApi } from 'shuttle-rpc/inference';
import { startFakeEngine, type FakeEngine } from 'shuttle-rpc/testing';
import { freePort } from '../helpers/ports.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * `shuttle worker` started the way a deployment starts it, its port in the environment
 * (SHUTTLE_PORT): it serves there. A flag's own default must not win over the environment and
 * start the worker, silently, somewhere else.
 */
const CLI = '../../../dist/cli/main';
let engine: FakeEngine;
const children: Child[] = [];
beforeAll(async () => {
  engine = await startFakeEngine({ models: ['m'] });
});
afterAll(async () => {
  for (const child of children) await child.stop();
  await engine?.close();
});

describe('shuttle worker and SHUTTLE_PORT', () => {
  it('serves on SHUTTLE_PORT when --port is not given, and on --port when it is', async () => {
    const fromEnv = await freePort();
    const worker = await startFixture(CLI, { SHUTTLE_PORT: String(fromEnv) }, 15_000, [], ['worker', '--url', engine.url, '--metrics-url', 'none']);
    children.push(worker);
    expect(worker.port).toBe(fromEnv);

    const fromFlag = await freePort();
    const flagged = await startFixture(
      CLI,
      { SHUTTLE_PORT: String(fromEnv) },
      15_000,
      [],
      ['worker', '--url', engine.url, '--metrics-url', 'none', '--port', String(fromFlag)],
    );
    children.push(flagged);
    expect(flagged.port).toBe(fromFlag);
  }, 30_000);
});

describe('shuttle worker and SHUTTLE_MAX_CONCURRENT_CALLS', () => {
  it("holds the worker to the operator's limit, not to its own default of four calls a slot", async () => {
    const slow = await startFakeEngine({ models: ['m'], tokens: 50, tokenDelayMs: 20 });
    try {
      const worker = await startFixture(CLI, { SHUTTLE_MAX_CONCURRENT_CALLS: '1' }, 15_000, [], ['worker', '--url', slow.url, '--metrics-url', 'none']);
      children.push(worker);
      const client = await createClient({ registry: worker.url, cluster: 'failfast', timeoutMs: 10_000, config: false });
      try {
        const llm = client.proxy<LlmApi>('inference.LLM');
        const drain = async (): Promise<number> => {
          let tokens = 0;
          for await (const _token of llm.generate({ prompt: 'hello' })) tokens++;
          return tokens;
        };
        const outcomes = await Promise.allSettled([drain(), drain()]);
        const refused = outcomes
          .filter((outcome) => outcome.status === 'rejected')
          .map((outcome) => (outcome as PromiseRejectedResult).reason as { code?: number });
        expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
        expect(refused.map((error) => error.code)).toEqual([RpcCode.RESOURCE_EXHAUSTED]);
      } finally {
        await client.close();
      }
    } finally {
      await slow.close();
    }
  }, 30_000);
});
