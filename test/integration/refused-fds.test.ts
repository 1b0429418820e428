import { readdirSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type RpcClient } from 'shuttle-rpc';
import type { BudgetApi } from '../fixtures/budget-service.js';
import { startFixture, type Child } from '../helpers/process.js';

/*
 * A flood of connections that never read, against a provider under `prlimit --nofile=256`
 * (connection limits lowered to 96 per transport, 48 per address, see fd-limit.test.ts): every
 * connection past the limits is refused, and a refused socket whose GOAWAY waits to be read
 * holds its descriptor until it is closed. Only a few may wait at once; the rest are closed at
 * once, so the provider keeps descriptors for honest clients, its files and its registry.
 */
const SOFT_LIMIT = 256;
const FLOOD = 3000;
const WAVE = 200;
const WAVE_EVERY_MS = 20;

let provider: Child;
const sockets: net.Socket[] = [];
const clients: RpcClient[] = [];

beforeAll(async () => {
  provider = await startFixture('budget-provider', {}, 10_000, ['prlimit', `--nofile=${SOFT_LIMIT}`]);
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(clients.map((client) => client.close()));
  await provider?.stop();
});

async function honestCalls(client: RpcClient, count: number): Promise<number> {
  const budget = client.proxy<BudgetApi>('test.Budget');
  for (let i = 0; i < count; i++) expect(await budget.add({ a: i, b: 1 })).toEqual({ sum: i + 1 });
  return count;
}

describe('refused connections under a small fd limit', () => {
  it(`${FLOOD} sockets that never read, ${WAVE} every ${WAVE_EVERY_MS} ms: the provider stays well under its fd limit and honest clients, old and new, are served`, async () => {
    const pid = provider.announced['pid'] as number;
    const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;
    const early = await createClient({ registry: provider.url, timeoutMs: 10_000, config: false });
    clients.push(early);
    await honestCalls(early, 5);
    const baseline = fds();

    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, fds())), 5);
    const flood = (async () => {
      for (let opened = 0; opened < FLOOD; opened += WAVE) {
        for (let i = 0; i < WAVE; i++) {
          const socket = net.connect({ host: '127.0.0.1', port: provider.port, localAddress: '127.0.0.2' });
          socket.on('error', () => {});
          // Never read: a refused socket's GOAWAY and FIN stay unread, and no FIN comes back.
          socket.pause();
          sockets.push(socket);
        }
        await new Promise((resolve) => setTimeout(resolve, WAVE_EVERY_MS));
      }
    })();
    let honest = 0;
    try {
      // An old client keeps calling, and a new one connects in the middle of the flood.
      const during = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const late = await createClient({ registry: provider.url, timeoutMs: 10_000, config: false });
        clients.push(late);
        return honestCalls(late, 20);
      })();
      while (!(await Promise.race([flood.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5))]))) {
        honest += await honestCalls(early, 1);
      }
      honest += await during;
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      clearInterval(sampler);
    }
    console.log(`connection flood: provider fds ${baseline} before, peak ${peak} (limit ${SOFT_LIMIT}); ${honest} honest calls meanwhile`);
    expect(honest).toBeGreaterThan(20);
    // The connections kept (48 from the flood's address) and at most 16 refused sockets waiting
    // to close, over the baseline: far from the limit, whose last 64 are for the process itself.
    expect(peak).toBeLessThan(SOFT_LIMIT - 64);
    // The provider still opens files.
    expect(fds()).toBeLessThan(SOFT_LIMIT - 64);
  });
});
