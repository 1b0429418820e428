import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * The admin endpoint's live dashboard in a real headless browser (Debian's chromium, driven
 * by playwright-core): three simulated GPU workers and the example consumer replaying its chat
 * workload with `--admin-port`; the page must show the workers and keep updating, and keep a
 * worker killed mid-run listed as down with the streams that broke on it. The screenshot of
 * that is kept in build/artefacts/.
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
  for (const [name, gpu] of [['dash-h100', 'H100'], ['dash-l4', 'L4'], ['dash-a10', 'A10']] as const) {
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

afterAll(async () => {
  await browser?.close();
  consumer?.kill('SIGKILL');
  await Promise.all(workers.map((worker) => worker.stop()));
  await registry?.remove();
});

describe('the live dashboard', () => {
  it('loads, shows the workers of the running example with their load, and keeps updating', async () => {
    const page = await browser!.newPage({ viewport: { width: 1600, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${dashboard}?interval=250`);
    expect(await page.title()).toBe('shuttle-rpc dashboard');

    for (const [name, gpu] of [['dash-h100', 'H100'], ['dash-l4', 'L4'], ['dash-a10', 'A10']]) {
      const row = page.locator(`tr[data-worker="${name}"][data-state="up"]`);
      await row.waitFor({ timeout: 10_000 });
      const cells = await row.locator('td').allTextContents();
      expect(cells[1]).toBe('inference.LLM 1.0.0');
      expect(cells[3]).toBe(gpu);
      expect(cells[4]).toBe('up');
      expect(cells[10]).toBe('closed');
    }
    await page.waitForFunction(`Number.parseFloat(document.getElementById('calls-rate').textContent) > 0`, undefined, { timeout: 10_000 });
    await page.waitForFunction(`[...document.querySelectorAll('tr[data-worker] td:nth-child(6)')].some((cell) => Number.parseInt(cell.textContent, 10) > 0)`, undefined, { timeout: 10_000 });
    await page.waitForFunction(`document.getElementById('routes').textContent !== '-' && Number.parseInt(document.getElementById('cache-hit').textContent, 10) >= 0`, undefined, { timeout: 10_000 });
    // Charts: y axis labelled with values and units, x axis with the time window, lines drawn.
    for (const [chart, unit] of [['ttft-chart', 'ms'], ['throughput-chart', '/s'], ['errors-chart', '/s'], ['routes-chart', '/s']]) {
      const labels = await page.locator(`#${chart} text`).allTextContents();
      expect(labels.some((label) => label.endsWith(` ${unit}`) && Number.parseFloat(label) > 0)).toBe(true);
      expect(labels).toEqual(expect.arrayContaining(['now', '-15 s']));
    }
    // Keeps updating: the line gains points as samples arrive (one per interval).
    await page.waitForFunction(`(document.querySelector('#throughput-chart polyline')?.getAttribute('points') ?? '').split(' ').length >= 3`, undefined, { timeout: 10_000 });
    expect(await page.locator('#throughput-chart polyline').getAttribute('points')).toMatch(/^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
    expect(await page.locator('#window').textContent()).toBe('30 s');
    expect(await page.locator('body').innerText()).not.toMatch(/updates:|points:/);
    expect(await page.locator('#event-list tr[data-kind="joined"]').count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator('#error').textContent()).toBe('');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a worker killed mid-run stays listed as down, with when and why, its broken streams counted, and the event listed', async () => {
    const page = await browser!.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${dashboard}?interval=250`);
    const victim = workers.find((worker) => worker.announced['name'] === 'dash-a10')!;
    await page.locator('tr[data-worker="dash-a10"][data-state="up"]').waitFor({ timeout: 10_000 });
    // It has work in flight when it dies, so streams break on it.
    await page.waitForFunction(`Number.parseInt(document.querySelector('tr[data-worker="dash-a10"] td:nth-child(10)').textContent, 10) > 0`, undefined, { timeout: 10_000 });
    const killedAt = Date.now();
    victim.process.kill('SIGKILL');

    const down = page.locator('tr[data-worker="dash-a10"][data-state="down"]');
    await down.waitFor({ timeout: 15_000 });
    const cells = await down.locator('td').allTextContents();
    expect(cells[4]).toMatch(/^down since \d\d:\d\d:\d\d$/);
    expect(cells[16]).toMatch(/^died: its connection failed/);
    // The calls that failed on it: streams broken mid-answer, in its row and in the totals.
    expect(Number(cells[13])).toBeGreaterThan(0);
    await page.waitForFunction(`Number(document.getElementById('broken-total').textContent) > 0 && Number(document.getElementById('errors-total').textContent) > 0`, undefined, { timeout: 5000 });
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
