import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
