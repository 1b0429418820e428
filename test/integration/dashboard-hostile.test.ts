import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createServer } from 'shuttle-rpc';
import { startAdminServer, type AdminServer } from '../../src/metrics/admin.js';
import { admissionMetrics } from '../../src/metrics/admission.js';
import { ShuttleMetrics } from '../../src/metrics/metrics.js';
import type { ProviderStatus } from '../../src/metrics/reports.js';
import { EchoService, type EchoApi } from '../fixtures/services.js';

/*
 * The dashboard in a real headless browser (Debian's chromium, driven by playwright-core) fed
 * with what an attacker can write: a provider registered through a real (memory) registry with
 * markup, a closing script tag, a javascript: URL and a right-to-left override in its metadata,
 * a service name with markup (the registry allows any 255 bytes), and tenants with markup or
 * named after Object.prototype's functions. Each payload would set window.__pwned if it ran.
 */
const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const registry = `memory://dashboard-hostile-${process.pid}`;

const NAME = `<img src=x onerror="window.__pwned='name'">\u202Egnp.tac`;
const GPU = `</script><script>window.__pwned='gpu'</script>`;
const SERVICE = `<svg onload="window.__pwned='service'">\u2066x`;
const TENANT = `<img src=x onerror="window.__pwned='tenant'">`;

let browser: Browser | undefined;
let admin: AdminServer | undefined;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  const metrics = new ShuttleMetrics();
  const server = await createServer({
    services: [new EchoService()],
    registry,
    metadata: { name: NAME, gpu: GPU, model: 'javascript:window.__pwned="model"', slots: 4 },
    config: false,
  });
  cleanups.push(() => server.close());
  const client = await createClient({ registry, config: false, onAttempt: (event) => metrics.attempt(event) });
  cleanups.push(() => client.close());
  expect(await client.proxy<EchoApi>('test.Echo').add({ a: 1, b: 2 })).toEqual({ sum: 3 });
  const forged: ProviderStatus = {
    ...client.providers()[0]!,
    service: SERVICE,
    version: '<b>1</b>',
    address: '127.0.0.1:9',
    metadata: { name: 'forged', gpu: 'g'.repeat(16_000) },
  };
  const observer = admissionMetrics(metrics, () => ({
    running: 1,
    queued: 2,
    queuedTokens: 0,
    queuedByPriority: new Map([[1, 2]]),
    queuedByTenant: new Map([
      [TENANT, 1],
      ['__proto__', 1],
    ]),
    tenants: 3,
    drainPerSecond: undefined,
  }));
  observer.admitted!(TENANT, 1, 5);
  observer.admitted!('constructor', 1, 5);
  observer.refused!('toString', 5, 'tenant_queue_full');
  admin = await startAdminServer({ metrics, clients: [client, { providers: () => [forged] }] });
  cleanups.push(() => admin!.close());
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
}, 30_000);

afterAll(async () => {
  await browser?.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Opens the dashboard; `problems` collects page errors and console errors (a CSP violation is one). */
async function open(query = '?interval=250'): Promise<{ page: Page; problems: string[] }> {
  const page = await browser!.newPage({ viewport: { width: 1600, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  await page.goto(`${admin!.url}/dashboard${query}`);
  return { page, problems };
}

describe('the dashboard fed hostile names', () => {
  it('shows registry values, services and tenants as text with direction overrides marked, and runs none of them', async () => {
    const { page, problems } = await open();
    await page.locator('tr[data-worker="forged"]').waitFor({ timeout: 10_000 });
    await page.locator('#admission-tenants tr').nth(2).waitFor({ timeout: 10_000 });
    await page.waitForTimeout(600);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.locator('img, svg script, iframe').count()).toBe(0);
    expect(await page.evaluate('document.scripts.length')).toBe(1);

    const worker = await page.locator('tr[data-worker]').filter({ hasText: 'gnp.tac' }).locator('td').allTextContents();
    expect(worker[0]).toBe(`<img src=x onerror="window.__pwned='name'"><U+202E>gnp.tac`);
    expect(worker[1]).toBe('test.Echo 1.0.0');
    expect(worker[3]).toBe(GPU);
    const forged = await page.locator('tr[data-worker="forged"] td').allTextContents();
    expect(forged[1]).toBe(`<svg onload="window.__pwned='service'"><U+2066>x <b>1</b>`);
    // A 16 KB metadata value: cut, saying how much was left out.
    expect(forged[3]).toBe(`${'g'.repeat(200)}… (15800 more characters)`);
    const events = await page.locator('#event-list td:nth-child(2)').allTextContents();
    expect(events).toContain(`<img src=x onerror="window.__pwned='name'"><U+202E>gnp.tac`);

    const tenants = new Map(
      await page
        .locator('#admission-tenants tr')
        .evaluateAll((rows) => rows.map((row) => [row.getAttribute('data-tenant'), [...row.children].map((cell) => cell.textContent)] as const)),
    ) as Map<string, string[]>;
    expect(tenants.get(TENANT)).toEqual([TENANT, '1', '1', '5.0 ms', '0']);
    // Named after Object.prototype's members: their own counts, not the functions of every object.
    expect(tenants.get('constructor')).toEqual(['constructor', '0', '1', '5.0 ms', '0']);
    expect(tenants.get('toString')).toEqual(['toString', '0', '0', '-', '1']);
    expect(tenants.get('__proto__')).toEqual(['__proto__', '1', '0', '-', '0']);
    expect(problems).toEqual([]);
    await page.close();
  });

  it("refuses any script but its own, even markup put into the page as HTML, and any site's frame", async () => {
    const { page } = await open();
    await page.locator('tr[data-worker="forged"]').waitFor({ timeout: 10_000 });
    await page.evaluate(`(() => {
      const probe = document.createElement('div');
      probe.innerHTML = '<img src=x onerror="window.__pwned = \\'injected\\'"><a id="probe" href="#" onclick="window.__pwned = \\'click\\'">x</a>';
      document.body.append(probe);
      document.getElementById('probe').click();
    })()`);
    await page.waitForTimeout(500);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    await page.close();

    const framing = await browser!.newPage();
    await framing.setContent(`<iframe id="f" src="${admin!.url}/dashboard"></iframe>`);
    await framing.waitForTimeout(1000);
    const frame = framing.frames().find((candidate) => candidate.url().startsWith(admin!.url));
    const framedTitle = frame === undefined ? '' : await frame.title().catch(() => '');
    expect(framedTitle).not.toBe('shuttle-rpc dashboard');
    await framing.close();
  });

  it('polls at most every 250 ms whatever ?interval= asks, so a tab costs the endpoint at most three requests each 250 ms', async () => {
    const page = await browser!.newPage();
    let polls = 0;
    page.on('request', (request) => {
      if (request.url().endsWith('/fleet')) polls += 1;
    });
    await page.goto(`${admin!.url}/dashboard?interval=1`);
    await page.waitForTimeout(2000);
    await page.close();
    expect(polls).toBeGreaterThanOrEqual(4);
    expect(polls).toBeLessThanOrEqual(10);
  });
});
