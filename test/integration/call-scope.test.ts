import { afterEach, describe, expect, it } from 'vitest';
import { createClient, type Proxied } from 'shuttle-rpc';
import type { EchoApi } from '../fixtures/services.js';
import { startFixture } from '../helpers/process.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * Deadline and cancellation propagation from the very first call a provider serves, in a
 * provider process (test/fixtures/relay-provider.ts) that creates its client lazily inside
 * that first handler — real processes, real sockets.
 */
interface RelayApi {
  remainingMs(request: { url: string }): Promise<number | null>;
  sleep(request: { url: string; ms: number }): Promise<{ aborted: boolean }>;
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ relay: Proxied<RelayApi>; echo: Proxied<EchoApi>; downstream: string }> {
  const [downstream, relayProcess] = await Promise.all([startFixture('provider'), startFixture('relay-provider')]);
  cleanups.push(
    () => downstream.stop(),
    () => relayProcess.stop(),
  );
  const client = await createClient({ registry: 'memory://call-scope-test', timeoutMs: 10_000, config: false, log: false });
  cleanups.push(() => client.close());
  return {
    relay: client.proxy<RelayApi>('test.Relay', { url: relayProcess.url }),
    echo: client.proxy<EchoApi>('test.Echo', { url: downstream.url }),
    downstream: downstream.url,
  };
}

describe('call scopes in a provider whose client is created in its first handler', () => {
  it('the first call’s deadline reaches the downstream provider', async () => {
    const { relay, downstream } = await setup();
    const remaining = await relay.remainingMs({ url: downstream }, { timeoutMs: 2000 });
    // The relay's own client default is 30 s: the caller's 2 s must win.
    expect(remaining).not.toBeNull();
    expect(remaining!).toBeLessThanOrEqual(2000);
    expect(remaining!).toBeGreaterThan(1000);
  });

  it('cancelling the first call cancels the downstream call', async () => {
    const { relay, echo, downstream } = await setup();
    const controller = new AbortController();
    const call = relay.sleep({ url: downstream, ms: 10_000 }, { signal: controller.signal });
    call.catch(() => {});
    await waitUntil(async () => (await echo.invocations())['sleep'] === 1, 'the relayed sleep to start', 5000, 20);
    controller.abort();
    await expect(call).rejects.toMatchObject({ code: 1 });
    await waitUntil(async () => (await echo.lastAbort()) !== null, 'the downstream handler to see the cancel', 5000, 20);
  });
});
