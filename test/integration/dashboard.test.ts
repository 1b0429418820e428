import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * The admin endpoint's live dashboard in a real headless browser (Debian's chromium, driven
 * by playwright-core): two simulated GPU workers and the example consumer replaying its chat
 * workload with `--admin-port`; the page must show both workers and keep updating.
 */
const consumerScript = fileURLToPath(new URL('../../build/examples/inference/consumer.js', import.meta.url));
const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

let registry: { dir: string; remove(): Promise<void> };
const workers: Child[] = [];
let consumer: ChildProcess | undefined;
let dashboard: string;
let browser: Browser | undefined;

beforeAll(async () => {
  registry = await tempDir();
  const env = { SHUTTLE_REGISTRY: `file://${registry.dir}` };
  for (const [name, gpu] of [['dash-h100', 'H100'], ['dash-l4', 'L4']] as const) {
    workers.push(await startFixture('../../examples/inference/worker', env, 10_000, [], ['--name', name, '--gpu', gpu, '--slots', '4']));
  }
  consumer = spawn(process.execPath, [consumerScript, '--admin-port', '0', '--users', '200', '--turns', '3', '--concurrency', '6', '--max-tokens', '24'], {
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

afterAll(async () => {
  await browser?.close();
  consumer?.kill('SIGKILL');
  await Promise.all(workers.map((worker) => worker.stop()));
  await registry?.remove();
});

describe('the live dashboard', () => {
  it('loads, shows the workers of the running example with their load, and keeps updating', async () => {
    const page = await browser!.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${dashboard}?interval=250`);
    expect(await page.title()).toBe('shuttle-rpc dashboard');

    for (const [name, gpu] of [['dash-h100', 'H100'], ['dash-l4', 'L4']]) {
      const row = page.locator(`tr[data-worker="${name}"]`);
      await row.waitFor({ timeout: 10_000 });
      const cells = await row.locator('td').allTextContents();
      expect(cells[1]).toBe('inference.LLM 1.0.0');
      expect(cells[3]).toBe(gpu);
      expect(cells[4]).toMatch(/^\d+ \/ 4$/);
      expect(cells[9]).toBe('closed');
    }

    // It updates: more polls, a throughput history, and at some point tokens flowing and
    // work running on a worker (the example keeps both busy).
    const updates = Number(await page.locator('#updates').textContent());
    // The predicates run in the page, so they are given as source text.
    await page.waitForFunction(`Number(document.getElementById('updates').textContent) >= ${updates + 4}`, undefined, { timeout: 10_000 });
    await page.waitForFunction(`Number(document.getElementById('throughput').textContent) > 0`, undefined, { timeout: 10_000 });
    await page.waitForFunction(`Number(document.getElementById('ttft').textContent) > 0`, undefined, { timeout: 10_000 });
    await page.waitForFunction(
      `[...document.querySelectorAll('tr[data-worker] td:nth-child(5)')].some((cell) => Number.parseInt(cell.textContent, 10) > 0)`,
      undefined,
      { timeout: 10_000 },
    );
    expect(Number(await page.locator('#points').textContent())).toBeGreaterThan(2);
    expect(await page.locator('#throughput-chart polyline').getAttribute('points')).toMatch(/^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
    expect(await page.locator('#error').textContent()).toBe('');
    expect(errors).toEqual([]);
  });
});
