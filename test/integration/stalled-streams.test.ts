import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from 'shuttle-rpc';
import type { StreamApi } from '../fixtures/stream-service.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

/*
 * Long streams (token generations) and a provider that stops (SIGSTOP: a hung worker whose
 * kernel still accepts): new streams must stop going to it about a second after they start
 * waiting there, as unary calls do, however long a stream typically runs.
 */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a provider that stops, among providers of long streams', () => {
  it('gets no new stream once streams have waited there for their first chunk over a second', async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    const registry = `file://${tmp.dir}/registry`;
    const providers: Child[] = [];
    for (let i = 0; i < 2; i++) {
      const child = await startFixture('provider', { SHUTTLE_REGISTRY: registry, PROVIDER_STREAM: '1' });
      providers.push(child);
      cleanups.push(() => child.stop());
    }
    const routed: Array<{ at: number; address: string }> = [];
    const client = await createClient({
      registry,
      timeoutMs: 30_000,
      config: false,
      log: false,
      onRoute: (event) => routed.push({ at: performance.now(), address: event.decision.provider.address }),
    });
    cleanups.push(() => client.close());
    const streams = client.proxy<StreamApi>('test.Stream', { version: '1.0.0' });
    const drain = async (request: Parameters<StreamApi['count']>[0]): Promise<void> => {
      for await (const _ of streams.count(request)) {
        // Read to the end.
      }
    };
    // Streams of 2 s each, 15 or so at each provider: that is what a stream here typically takes.
    await Promise.all(Array.from({ length: 30 }, () => drain({ n: 20, delayMs: 100 })));
    const hung = providers[0]!;
    hung.process.kill('SIGSTOP');
    cleanups.push(() => hung.process.kill('SIGCONT'));
    const stoppedAt = performance.now();
    routed.length = 0;
    // A new short stream every 50 ms for 3 s; those sent to the stopped provider wait there.
    const waiting: Array<Promise<void>> = [];
    while (performance.now() - stoppedAt < 3000) {
      waiting.push(drain({ n: 2 }).catch(() => {}));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const late = routed.filter((route) => route.address.endsWith(`:${hung.port}`) && route.at - stoppedAt > 1500);
    // Passed over once its first waiting stream had heard nothing for a second (1 s + a pick's
    // slack); before, for four times the 2 s a stream here runs: every other stream of the 3 s.
    expect(late).toEqual([]);
    expect(routed.filter((route) => route.address.endsWith(`:${hung.port}`)).length).toBeGreaterThan(0);
    // The streams waiting on the stopped provider end with it.
    hung.process.kill('SIGKILL');
    await Promise.all(waiting);
  });
});
