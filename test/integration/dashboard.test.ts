import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeEngine, type FakeEngine } from 'shuttle-rpc/testing';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * The admin endpoint's live dashboard in a real headless browser (Debian's chromium, driven
 * by playwright-core): three simulated GPU workers and the example consumer replaying its chat
 * workload with `--admin-port`; the page must show the workers and keep updating, and keep a
 * worker killed mid-run listed as down with the streams that broke on it. The screenshot of
 * that is kept in build/artefacts/. Then a `shuttle gateway` process with a small admission
 * queue in front of one slow engine: the page must draw the queue exactly as the gateway's
 * metrics count it, and follow it when a slot frees.
 */
const consumerScript = fileURLToPath(new URL('../../build/examples/inference/consumer.js', import.meta.url));
const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const artefacts = fileURLToPath(new URL('../../build/artefacts', import.meta.url));

let registry: { dir: string; remove(): Promise<void> };
const workers: Child[] = [];
let consumer: ChildProcess | undefined;
let dashboard: string;
let browser: Browser | undefined;

beforeAll(async () => {
  registry = await tempDir();
  const env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
  for (const [name, gpu] of [
    ['dash-h100', 'H100'],
    ['dash-l4', 'L4'],
    ['dash-a10', 'A10'],
  ] as const) {
    workers.push(await startFixture('../../examples/inference/worker', env, 10_000, [], ['--name', name, '--gpu', gpu, '--slots', '4']));
  }
  consumer = spawn(process.execPath, [consumerScript, '--admin-port', '0', '--users', '600', '--turns', '3', '--concurrency', '9', '--max-tokens', '64'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  dashboard = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the consumer did not print its admin url within 10 s')), 10_000);
    createInterface({ input: consumer!.stdout! }).on('line', (line) => {
      const match = /^admin (http:\/\/\S+\/dashboard)$/.exec(line);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
}, 60_000);

/**
 * A page of the dashboard. Its Content-Security-Policy refuses eval, which the string predicates
 * of waitForFunction below are; dashboard-hostile.test.ts checks the page under its policy.
 */
const newPage = (height: number): Promise<Page> => browser!.newPage({ viewport: { width: 1600, height }, bypassCSP: true });

afterAll(async () => {
  await browser?.close();
  consumer?.kill('SIGKILL');
  await Promise.all(workers.map((worker) => worker.stop()));
  await registry?.remove();
});

describe('the live dashboard', () => {
  it('loads, shows the workers of the running example with their load, and keeps updating', async () => {
    const page = await newPage(1000);
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${dashboard}?interval=250`);
    expect(await page.title()).toBe('shuttle-rpc dashboard');

    for (const [name, gpu] of [
      ['dash-h100', 'H100'],
      ['dash-l4', 'L4'],
      ['dash-a10', 'A10'],
    ]) {
      const row = page.locator(`tr[data-worker="${name}"][data-state="up"]`);
      await row.waitFor({ timeout: 10_000 });
      const cells = await row.locator('td').allTextContents();
      expect(cells[1]).toBe('inference.LLM 1.0.0');
      expect(cells[3]).toBe(gpu);
      expect(cells[4]).toBe('up');
      expect(cells[10]).toBe('closed');
    }
    await page.waitForFunction(`Number.parseFloat(document.getElementById('calls-rate').textContent) > 0`, undefined, { timeout: 10_000 });
    await page.waitForFunction(
      `[...document.querySelectorAll('tr[data-worker] td:nth-child(6)')].some((cell) => Number.parseInt(cell.textContent, 10) > 0)`,
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      `document.getElementById('routes').textContent !== '-' && Number.parseInt(document.getElementById('cache-hit').textContent, 10) >= 0`,
      undefined,
      { timeout: 10_000 },
    );
    // Charts: y axis labelled with values and units, x axis with the time window, lines drawn.
    for (const [chart, unit] of [
      ['ttft-chart', 'ms'],
      ['throughput-chart', '/s'],
      ['errors-chart', '/s'],
      ['routes-chart', '/s'],
    ]) {
      const labels = await page.locator(`#${chart} text`).allTextContents();
      expect(labels.some((label) => label.endsWith(` ${unit}`) && Number.parseFloat(label) > 0)).toBe(true);
      expect(labels).toEqual(expect.arrayContaining(['now', '-15 s']));
    }
    // Keeps updating: the line gains points as samples arrive (one per interval).
    await page.waitForFunction(`(document.querySelector('#throughput-chart polyline')?.getAttribute('points') ?? '').split(' ').length >= 3`, undefined, {
      timeout: 10_000,
    });
    expect(await page.locator('#throughput-chart polyline').getAttribute('points')).toMatch(/^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
    expect(await page.locator('#window').textContent()).toBe('30 s');
    // biome-ignore lint/performance/useDomNodeTextContent: the text a reader sees, as rendered
    expect(await page.locator('body').innerText()).not.toMatch(/updates:|points:/);
    expect(await page.locator('#event-list tr[data-kind="joined"]').count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('#error').textContent()).toBe('');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a worker killed mid-run stays listed as down, with when and why, its broken streams counted, and the event listed', async () => {
    const page = await newPage(1000);
    await page.goto(`${dashboard}?interval=250`);
    const victim = workers.find((worker) => worker.announced['name'] === 'dash-a10')!;
    await page.locator('tr[data-worker="dash-a10"][data-state="up"]').waitFor({ timeout: 10_000 });
    // It has work in flight when it dies, so streams break on it.
    await page.waitForFunction(`Number.parseInt(document.querySelector('tr[data-worker="dash-a10"] td:nth-child(10)').textContent, 10) > 0`, undefined, {
      timeout: 10_000,
    });
    const killedAt = Date.now();
    victim.process.kill('SIGKILL');

    const down = page.locator('tr[data-worker="dash-a10"][data-state="down"]');
    await down.waitFor({ timeout: 15_000 });
    const cells = await down.locator('td').allTextContents();
    expect(cells[4]).toMatch(/^down since \d\d:\d\d:\d\d$/);
    // Its connection failing or the registry dropping it, whichever this page saw first.
    expect(cells[16]).toMatch(/^died: (its connection failed|it left the registry with \d+ calls of this client in flight)/);
    // The calls that failed on it: streams broken mid-answer, in its row and in the totals. The
    // row may turn down (the registry dropped it) a refresh before the broken streams are counted.
    await page.waitForFunction(`Number(document.querySelector('tr[data-worker="dash-a10"] td:nth-child(14)').textContent) > 0`, undefined, {
      timeout: 5000,
    });
    await page.waitForFunction(
      `Number(document.getElementById('broken-total').textContent) > 0 && Number(document.getElementById('errors-total').textContent) > 0`,
      undefined,
      { timeout: 5000 },
    );
    expect(await page.locator('#event-list tr[data-kind="died"]').filter({ hasText: 'dash-a10' }).count()).toBe(1);
    // Still listed a while later (the retention period is minutes), the others still up.
    await page.waitForTimeout(2000);
    expect(await down.count()).toBe(1);
    expect(await page.locator('tr[data-state="up"]').count()).toBe(2);
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    await mkdir(artefacts, { recursive: true });
    await page.screenshot({ path: `${artefacts}/dashboard-worker-down.png`, fullPage: true });
    await page.close();
  });
});

describe("the gateway's admission queue on the dashboard", () => {
  const CLI = '../../../dist/cli/main';
  let dir: { dir: string; remove(): Promise<void> };
  let engine: FakeEngine;
  const children: Child[] = [];
  let gateway: Child;
  const stop = new AbortController();

  beforeAll(async () => {
    dir = await tempDir();
    const env = { SHUTTLE_REGISTRY: `file://${dir.dir}` };
    // Streams that last far longer than the test: the queue holds still while the page is read.
    engine = await startFakeEngine({ models: ['m'], tokens: 100_000, tokenDelayMs: 10 });
    children.push(await startFixture(CLI, env, 15_000, [], ['worker', '--url', engine.url, '--slots', '2', '--metrics-url', 'none']));
    gateway = await startFixture(CLI, env, 15_000, [], ['gateway', '--port', '0', '--admin-port', '0', '--admission-max-queued', '6']);
    children.push(gateway);
    // The gateway reads the registry after it is up: wait until it knows the worker's model.
    await waitUntil(async () => (await (await fetch(`${gateway.url}/v1/models`)).text()).includes('"m"'), "the gateway to list the worker's model", 10_000, 50);
  }, 60_000);

  afterAll(async () => {
    stop.abort();
    for (const child of children.reverse()) await child.stop();
    await engine?.close();
    await dir?.remove();
  });

  it('shows what waits by priority and tenant, what was admitted and refused by reason, as the gateway counts them', async () => {
    const admin = String(gateway.announced['admin']);
    const snapshot = async (): Promise<{ running: number; queuedByPriority: Record<string, number> }> =>
      ((await (await fetch(`${admin}/admission`)).json()) as { admission: { running: number; queuedByPriority: Record<string, number> } }).admission;
    const waiting = async (): Promise<number> => Object.values((await snapshot()).queuedByPriority).reduce((a, b) => a + b, 0);
    const chat = (tenant: string, priority: string, stream = false): Promise<Response> =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-tenant-id': tenant, 'x-priority': priority },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `${tenant} ${priority}` }], stream }),
        signal: stop.signal,
      });
    const held: Array<Promise<unknown>> = [];
    const hold = (answer: Promise<Response>): void => void held.push(answer.catch(() => undefined));
    // Two streams take the worker's two slots.
    const first = new AbortController();
    const running = fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-id': 'batch', 'x-priority': 'low' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'first' }], stream: true }),
      signal: AbortSignal.any([stop.signal, first.signal]),
    });
    hold(running);
    hold(chat('batch', 'low', true));
    await waitUntil(() => engine.open === 2, 'two streams at the engine', 10_000, 25);
    // Three of batch wait (its share: half the queue of 6); a fourth is refused for its share.
    for (let i = 0; i < 3; i++) hold(chat('batch', 'low'));
    await waitUntil(async () => (await waiting()) === 3, 'three waiting', 10_000, 25);
    expect((await chat('batch', 'low')).status).toBe(429);
    // Its wait began after it was sent and before it was seen waiting (a poll can take a while).
    const urgentSentAt = Date.now();
    hold(chat('web', 'high'));
    await waitUntil(async () => (await waiting()) === 4, 'the urgent one waiting', 10_000, 25);
    const urgentQueuedAt = Date.now();
    hold(chat('web', 'normal'));
    hold(chat('api', 'normal'));
    await waitUntil(async () => (await waiting()) === 6, 'six waiting', 10_000, 25);
    // A full queue refuses a tenant that holds about as much of it as any other (one that
    // holds less would push out batch's newest call instead).
    expect((await chat('web', 'normal')).status).toBe(429);

    const page = await newPage(1400);
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${admin}/dashboard?interval=250`);
    await page.locator('#admission').waitFor({ state: 'visible', timeout: 10_000 });
    await page.waitForFunction(
      `document.getElementById('admission-refused').textContent === '2' && document.querySelectorAll('#queue-chart polyline').length === 3`,
      undefined,
      { timeout: 10_000 },
    );
    const read = async (selector: string): Promise<string[]> => page.locator(selector).allTextContents();
    expect(await read('#admission-running, #admission-queued, #admission-admitted, #admission-refused')).toEqual(['2', '6', '2', '2']);
    // By priority: waiting, admitted, mean wait, refused; highest first.
    const priorities = await page
      .locator('#admission-priorities tr')
      .evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)));
    expect(priorities).toEqual([
      ['5 (high)', '1', '0', '-', '0'],
      ['1 (normal)', '2', '0', '-', '1'],
      ['0 (low)', '3', '2', expect.stringMatching(/^[\d.]+ ms$/), '1'],
    ]);
    const tenants = await page
      .locator('#admission-tenants tr')
      .evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell, i) => (i === 3 ? '' : cell.textContent))));
    expect(tenants).toEqual([
      ['batch', '3', '2', '', '1'],
      ['web', '2', '0', '', '1'],
      ['api', '1', '0', '', '0'],
    ]);
    expect(
      await page
        .locator('#admission-reasons tr')
        .evaluateAll((rows) => rows.map((row) => [row.getAttribute('data-reason'), row.querySelector('td.refused')!.textContent])),
    ).toEqual(
      expect.arrayContaining([
        ['tenant_queue_full', '1'],
        ['queue_full', '1'],
      ]),
    );
    // The same figures as the gateway's Prometheus metrics.
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    for (const line of [
      'shuttle_admission_queued{priority="0",tenant=""} 3',
      'shuttle_admission_queued{priority="1",tenant=""} 2',
      'shuttle_admission_queued{priority="5",tenant=""} 1',
      'shuttle_admission_queued{priority="",tenant="batch"} 3',
      'shuttle_admission_running 2',
      'shuttle_admission_refused_total{priority="0",tenant="batch",reason="tenant_queue_full"} 1',
      'shuttle_admission_refused_total{priority="1",tenant="web",reason="queue_full"} 1',
    ]) {
      expect(metrics).toContain(line);
    }
    // The chart of waiting calls is scaled to them: its top is the 3 low-priority ones.
    expect(await read('#queue-chart text')).toEqual(expect.arrayContaining(['3.0 calls', '0 (low)', '1 (normal)', '5 (high)']));

    // A slot frees: the urgent call goes first, and the page shows how long it waited.
    first.abort();
    const freedAt = Date.now();
    await page.waitForFunction(`document.querySelector('#admission-priorities tr[data-priority="5"] td.admitted')?.textContent === '1'`, undefined, {
      timeout: 10_000,
    });
    const urgent = await page.locator('#admission-priorities tr[data-priority="5"] td').allTextContents();
    expect(urgent.slice(1, 3)).toEqual(['0', '1']);
    const waitedMs = Number.parseFloat(urgent[3]!);
    expect(waitedMs).toBeGreaterThanOrEqual(freedAt - urgentQueuedAt - 100);
    expect(waitedMs).toBeLessThan(Date.now() - urgentSentAt + 100);
    expect(await read('#admission-queued')).toEqual(['5']);
    // Its wait is the only one in the interval that admitted it: the wait chart's top.
    await page.waitForFunction(
      `[...document.querySelectorAll('#wait-chart text')].some((label) => label.textContent.endsWith(' ms') && Number.parseFloat(label.textContent) >= ${waitedMs * 0.9})`,
      undefined,
      { timeout: 10_000 },
    );
    expect(errors).toEqual([]);
    await page.screenshot({ path: `${artefacts}/dashboard-admission.png`, fullPage: true });
    await page.close();
    stop.abort();
    await Promise.all(held);
  }, 90_000);
});
