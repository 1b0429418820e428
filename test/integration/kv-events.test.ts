import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Publisher } from 'zeromq';
import { Packr } from 'msgpackr';
import { createClient, type Proxied, type RpcClient } from 'shuttle-rpc';
import { startEngineWorker, type EngineWorker } from 'shuttle-rpc/engine';
import type { LlmApi, Usage } from 'shuttle-rpc/inference';
import { startFakeEngine, type FakeEngine } from 'shuttle-rpc/testing';
import { summaryMatch } from '../../src/loadbalance/cache-summary.js';
import { prefixBlockHashes } from '../../src/loadbalance/hash.js';
import { startFixture, type Child } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';
import { waitUntil } from '../helpers/wait.js';

/*
 * An engine's KV events, followed by the engine adapter, end to end on real sockets: fake
 * engines that keep a prefix cache and publish its events over ZeroMQ in vLLM's format, engine
 * workers that follow them and publish what the cache holds, and consumers that route on it —
 * also consumers that never sent the prompt themselves. A hostile publisher at the engine's
 * endpoint costs the worker nothing but a logged complaint.
 */
const CLI = '../../../dist/cli/main';
const packr = new Packr({ useRecords: false });
const system = (i: number): string =>
  `system: You are assistant number ${i}. ${`Follow the operating manual of product line ${i}, chapter by chapter. `.repeat(60)}`.slice(0, 4096);
const chat = (i: number, question: string) => ({
  messages: [
    { role: 'system', content: system(i) },
    { role: 'user', content: question },
  ],
  maxTokens: 2,
});
const textOf = (request: ReturnType<typeof chat>): string => request.messages.map((message) => `${message.role}: ${message.content}`).join('\n');

async function generate(llm: Proxied<LlmApi>, request: ReturnType<typeof chat>): Promise<Usage> {
  const stream = llm.generate(request);
  for await (const _ of stream) {
    // read to the end
  }
  return (await stream.trailer)!;
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

describe('an engine worker following the engine’s KV events', () => {
  async function workerFor(engine: FakeEngine, endpoint = engine.kvCache!.endpoint, maxMessageBytes?: number) {
    const worker = await startEngineWorker({
      url: engine.url,
      name: 'kv',
      models: ['m'],
      metricsUrl: false,
      kvEvents: { endpoint, ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) },
      server: { host: '127.0.0.1', port: 0, log: false },
      log: false,
    });
    cleanup.push(() => worker.close());
    const client = await createClient({ registry: `shuttle://127.0.0.1:${worker.server.port}`, config: false, log: false });
    cleanup.push(() => client.close());
    return { worker, llm: client.proxy<LlmApi>('inference.LLM') };
  }
  const matched = (worker: EngineWorker, text: string) => summaryMatch(prefixBlockHashes(text, 64, 4096), new Set(worker.kvCache!.summary()));
  /**
   * Sends questions on system prompt `i` until the worker's summary shows at least `blocks` of
   * it: ZeroMQ's subscription reaches the publisher a moment after connecting, and the events
   * of prompts sent before that are lost.
   */
  async function warm(worker: EngineWorker, llm: Proxied<LlmApi>, i: number, blocks: number): Promise<void> {
    let sent = 0;
    await waitUntil(
      async () => {
        await generate(llm, chat(i, `warm-up question ${sent++}`));
        return matched(worker, textOf(chat(i, 'x'))) >= blocks;
      },
      () => `the summary to show system prompt ${i} (stats ${JSON.stringify(worker.kvCache!.stats)})`,
      10_000,
      50,
    );
  }

  it('publishes what the engine cached of each prompt, asking the engine for the prompt’s token ids', async () => {
    const engine = await startFakeEngine({ models: ['m'], tokens: 2, tokenDelayMs: 0, kvCache: { blockSize: 16, capacityBlocks: 100_000 } });
    cleanup.push(() => engine.close());
    const { worker, llm } = await workerFor(engine);
    await warm(worker, llm, 0, 1);
    expect(engine.requests.at(-1)!.body.return_token_ids).toBe(true);
    // A new question on the same system prompt: the engine serves its system part from cache,
    // and the worker's summary says the same about the prompt's text.
    const usage = await generate(llm, chat(0, 'a brand new question'));
    expect(usage.cachedTokens).toBeGreaterThan(usage.promptTokens * 0.8);
    await waitUntil(() => matched(worker, textOf(chat(0, 'a brand new question'))) >= 48, 'the new prompt to show in the summary', 5000, 50);
    expect(matched(worker, textOf(chat(0, 'any other question')))).toBeGreaterThanOrEqual(48);
    expect(matched(worker, textOf(chat(1, 'a prompt never sent')))).toBe(0);
    expect(worker.kvCache!.stats).toMatchObject({ bad: 0, missed: 0 });
    // A long prompt's token ids make a first event of megabytes (300k ids here, 1.8 MB of
    // JSON): still one generation, not an SSE event over the usual limit.
    const long = await generate(llm, { messages: [{ role: 'user', content: 'long context '.repeat(92_000) }], maxTokens: 2 });
    expect(long).toMatchObject({ promptTokens: expect.any(Number), outputTokens: 2 });
    expect(long.promptTokens).toBeGreaterThan(290_000);
    // The engine resets its cache: the summary empties.
    await engine.kvCache!.clear();
    await waitUntil(() => worker.kvCache!.summary().length === 0, 'the summary to empty after AllBlocksCleared', 5000, 50);
  });

  it('asks /tokenize after the answer when the engine returns no token ids, and stops asking an engine without it', async () => {
    const engine = await startFakeEngine({ models: ['m'], tokens: 2, tokenDelayMs: 0, kvCache: { blockSize: 16, returnTokenIds: false } });
    cleanup.push(() => engine.close());
    const { worker, llm } = await workerFor(engine);
    await warm(worker, llm, 2, 48);
    const tokenized = engine.requests.filter((request) => request.path === '/tokenize');
    expect(tokenized.length).toBeGreaterThan(0);
    expect(tokenized[0]!.body).toMatchObject({ model: 'm', add_generation_prompt: true, messages: chat(2, 'warm-up question 0').messages });

    const bare = await startFakeEngine({
      models: ['m'],
      tokens: 2,
      tokenDelayMs: 0,
      kvCache: { blockSize: 16, returnTokenIds: false, tokenizeEndpoint: false },
    });
    cleanup.push(() => bare.close());
    const other = await workerFor(bare);
    for (let i = 0; i < 5; i++) {
      await generate(other.llm, chat(2, `question ${i}`));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(bare.requests.filter((request) => request.path === '/tokenize')).toHaveLength(1);
    expect(other.worker.kvCache!.summary()).toEqual([]);
  });

  it('takes a hostile publisher’s garbage as bad messages and keeps serving; counts lost and restarted sequences', async () => {
    const engine = await startFakeEngine({ models: ['m'], tokens: 2, tokenDelayMs: 0, kvCache: { blockSize: 16 } });
    cleanup.push(() => engine.close());
    const hostile = new Publisher();
    await hostile.bind('tcp://127.0.0.1:*');
    cleanup.push(() => hostile.close());
    const { worker, llm } = await workerFor(engine, hostile.lastEndpoint!, 64 * 1024);
    const seq = (n: bigint) => {
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64BE(n);
      return bytes;
    };
    const valid = (n: bigint) => hostile.send(['', seq(n), packr.pack([0, [['BlockRemoved', [n], null]], 0])]);
    // Wait for the subscription to be in place.
    let probe = 0n;
    await waitUntil(
      async () => {
        await valid(probe++);
        return worker.kvCache!.stats.messages > 0;
      },
      'the worker to subscribe',
      10_000,
      50,
    );
    const before = { ...worker.kvCache!.stats };
    await hostile.send(['', seq(probe)]);
    await hostile.send(['', Buffer.alloc(7), Buffer.alloc(1)]);
    await hostile.send(['', seq(probe), Buffer.from('{"not":"msgpack"}')]);
    await hostile.send(['', seq(probe + 1n), packr.pack([0, [['BlockStored', ['x'], null, [1], 1, null, null]], 0])]);
    await hostile.send(['', seq(probe + 2n), packr.pack([0, Array(100).fill(['Unknown']), 0])]);
    await waitUntil(
      () => worker.kvCache!.stats.bad >= before.bad + 5,
      () => `5 bad messages counted (${JSON.stringify(worker.kvCache!.stats)})`,
      5000,
      20,
    );
    // A sequence that skips 10 is counted as lost; one that goes back, or leaps by billions, as a restart.
    await valid(probe + 13n);
    await valid(2n);
    await waitUntil(() => worker.kvCache!.stats.restarts >= 1, 'the restart to be seen', 5000, 20);
    expect(worker.kvCache!.stats.missed).toBe(10);
    await valid(2n ** 63n);
    await waitUntil(() => worker.kvCache!.stats.restarts >= 2, 'the leap to be seen as a restart', 5000, 20);
    expect(worker.kvCache!.stats.missed).toBe(10);
    // A stored block, then a message over maxMessageBytes: ZeroMQ drops the connection, the
    // worker connects again and forgets what it held (the engine may have restarted meanwhile).
    await hostile.send(['', seq(1n), packr.pack([0, [['BlockStored', [1], null, [1, 2], 2, null, null]], 0])]);
    await waitUntil(() => worker.kvCache!.stats.blocks === 1, 'the block to be held', 5000, 20);
    await hostile.send(['', seq(3n), Buffer.alloc(100 * 1024)]);
    let after = 4n;
    const messages = worker.kvCache!.stats.messages;
    await waitUntil(
      async () => {
        await valid(after++);
        return worker.kvCache!.stats.messages > messages;
      },
      'events to flow again after the oversized message',
      10_000,
      100,
    );
    expect(worker.kvCache!.stats.disconnects).toBeGreaterThanOrEqual(1);
    expect(worker.kvCache!.stats.blocks).toBe(0);
    // The worker still serves generations.
    const usage = await generate(llm, chat(3, 'still there?'));
    expect(usage.outputTokens).toBe(2);
  });

  it('applies a flood of 4 MB messages of one-token blocks a slice at a time: the event loop never stalls past a few ms, and calls are served meanwhile', async () => {
    const engine = await startFakeEngine({ models: ['m'], tokens: 2, tokenDelayMs: 0, kvCache: { blockSize: 16 } });
    cleanup.push(() => engine.close());
    const hostile = new Publisher();
    await hostile.bind('tcp://127.0.0.1:*');
    cleanup.push(() => hostile.close());
    const { worker, llm } = await workerFor(engine, hostile.lastEndpoint!);
    const seq = (n: number) => {
      const bytes = Buffer.alloc(8);
      bytes.writeBigUInt64BE(BigInt(n));
      return bytes;
    };
    let probe = 0;
    await waitUntil(
      async () => {
        await hostile.send(['', seq(probe++), packr.pack([0, [['AllBlocksCleared']], 0])]);
        return worker.kvCache!.stats.messages > 0;
      },
      'the worker to subscribe',
      10_000,
      50,
    );
    // 23 events of 20,000 one-token blocks chained to each other (4 MB), then 100,000 events of one
    // block each (2.7 MB), then one event of 400,000 blocks (refused: over 512 KiB).
    const chained = Array.from({ length: 23 }, (_, e) => {
      const hashes = Array.from({ length: 20_000 }, (_, i) => 1 + e * 20_000 + i);
      return ['BlockStored', hashes, e === 0 ? null : e * 20_000, hashes.map((hash) => (hash * 7) % 150_000), 1, null, null];
    });
    const single = Array.from({ length: 100_000 }, (_, i) => ['BlockStored', [10_000_000 + i], i === 0 ? null : 9_999_999 + i, [i % 100], 1, null, null]);
    const huge = ['BlockStored', Array.from({ length: 400_000 }, (_, i) => 20_000_000 + i), null, Array.from({ length: 400_000 }, () => 5), 1, null, null];
    const messages = [packr.pack([0, chained, 0]), packr.pack([0, single, 0]), packr.pack([0, [huge], 0])];
    expect(messages[0]!.length).toBeGreaterThan(4_000_000);
    const before = { ...worker.kvCache!.stats };
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    for (const [i, payload] of messages.entries()) await hostile.send(['', seq(probe + i), payload]);
    // A generation while the flood is applied is answered as usual.
    const started = performance.now();
    expect((await generate(llm, chat(1, 'during the flood'))).outputTokens).toBe(2);
    const callMs = performance.now() - started;
    await waitUntil(
      () => worker.kvCache!.stats.events >= before.events + 100_023 && worker.kvCache!.stats.bad > before.bad,
      () => `the flood to be applied (${JSON.stringify(worker.kvCache!.stats)})`,
      30_000,
      50,
    );
    delay.disable();
    const stalls = delay.max / 1e6;
    // Applied whole, the first message held the loop 500-600 ms; in slices the longest wait is
    // a slice plus whatever else this busy test process does (the publisher, GC): 12-31 ms on a
    // quiet machine, up to ~90 ms with the rest of the suite running beside it.
    expect(stalls, `the longest the event loop waited: ${stalls.toFixed(1)} ms`).toBeLessThan(250);
    expect(callMs).toBeLessThan(1000);
    expect(worker.kvCache!.stats.blocks).toBe(262_144);
  }, 60_000);

  it('refuses bad kvEvents options with the key, the value and what is allowed', async () => {
    const engine = await startFakeEngine({ models: ['m'] });
    cleanup.push(() => engine.close());
    const start = (kvEvents: unknown) =>
      startEngineWorker({
        url: engine.url,
        models: ['m'],
        metricsUrl: false,
        kvEvents: kvEvents as never,
        server: { host: '127.0.0.1', port: 0, registry: false, log: false },
      });
    for (const endpoint of ['http://127.0.0.1:5557', 'tcp://127.0.0.1', 'tcp://127.0.0.1:99999', 'tcp://127.0.0.1:0', 'tcp:// :5557']) {
      await expect(start({ endpoint })).rejects.toThrow(
        /engine worker kvEvents\.endpoint.*a ZeroMQ endpoint: tcp:\/\/host:port \(port 1\.\.65535\) or ipc:\/\/path/,
      );
    }
    // Accepted forms start (the engine need not be up yet).
    for (const endpoint of ['tcp://[::1]:5557', 'tcp://localhost:5557']) {
      const worker = await start({ endpoint });
      expect(worker.kvCache!.stats.messages).toBe(0);
      await worker.close();
    }
    await expect(start({ endpoint: 'tcp://127.0.0.1:5557', maxBlocks: 0 })).rejects.toThrow(/kvEvents\.maxBlocks/);
    await expect(start({ endpoint: 'tcp://127.0.0.1:5557', topics: 'x' })).rejects.toThrow(/topics/);
  });
});

describe('consumers routing on the caches the workers publish (worker processes, file registry)', () => {
  let registry: { dir: string; remove(): Promise<void> };
  const engines: FakeEngine[] = [];
  const workers: Child[] = [];
  const clients: RpcClient[] = [];

  beforeAll(async () => {
    registry = await tempDir();
    for (let i = 0; i < 2; i++) {
      const engine = await startFakeEngine({ models: ['m'], tokens: 2, tokenDelayMs: 0, kvCache: { blockSize: 16, capacityBlocks: 100_000 } });
      engines.push(engine);
      workers.push(
        await startFixture(
          CLI,
          { SHUTTLE_REGISTRY: `file://${registry.dir}` },
          15_000,
          [],
          [
            'worker',
            '--url',
            engine.url,
            '--name',
            `kv-${i}`,
            '--model',
            'm',
            '--metrics-url',
            'none',
            '--metrics-interval',
            '100',
            '--kv-events',
            engine.kvCache!.endpoint,
            ...(i === 0 ? ['--admin-port', '0'] : []),
          ],
        ),
      );
    }
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) await client.close();
    for (const worker of workers) await worker.stop();
    for (const engine of engines) await engine.close();
    await registry?.remove();
  });

  it.each(['slo', 'prefix-affinity'])('a fresh %s consumer sends each warmed prompt to the worker whose engine holds it', async (loadbalance) => {
    // Four system prompts, warmed on the workers by calling each worker directly: 0 and 2 on
    // kv-0, 1 and 3 on kv-1.
    const direct = await Promise.all(workers.map((worker) => createClient({ registry: worker.url, config: false, log: false })));
    clients.push(...direct);
    const home = (i: number) => i % 2;
    const watcher = await createClient({ registry: `file://${registry.dir}`, config: false, log: false });
    clients.push(watcher);
    watcher.proxy<LlmApi>('inference.LLM');
    await watcher.ready();
    const published = (i: number): number => {
      const load = watcher.providers().find((provider) => provider.metadata.name === `kv-${home(i)}`)?.load;
      return summaryMatch(prefixBlockHashes(textOf(chat(i, 'q')), 64, 4096), new Set(load?.cachedPrefixes ?? []));
    };
    let round = 0;
    await waitUntil(
      async () => {
        for (let i = 0; i < 4; i++) if (published(i) < 48) await generate(direct[home(i)]!.proxy<LlmApi>('inference.LLM'), chat(i, `warm ${round}`));
        round++;
        return [0, 1, 2, 3].every((i) => published(i) >= 48);
      },
      () => `the registry to carry each worker's summary (${[0, 1, 2, 3].map(published)})`,
      15_000,
      100,
    );
    // A consumer that has sent nothing routes by the published summaries alone.
    const fresh = await createClient({ registry: `file://${registry.dir}`, config: false, log: false, loadbalance });
    clients.push(fresh);
    const llm = fresh.proxy<LlmApi>('inference.LLM');
    await fresh.ready();
    await waitUntil(
      () => fresh.providers().filter((provider) => (provider.load?.cachedPrefixes?.length ?? 0) > 0).length === 2,
      'the fresh consumer to read the loads',
    );
    const landed: string[] = [];
    for (let n = 0; n < 3; n++) {
      for (let i = 0; i < 4; i++) {
        const usage = await generate(llm, chat(i, `fresh question ${loadbalance} ${n}`));
        landed.push(`${i}->${usage.worker}`);
        expect(usage.cachedTokens, `${landed} ${[0, 1, 2, 3].map(published)}`).toBeGreaterThan(usage.promptTokens * 0.8);
      }
    }
    expect(landed).toEqual([0, 1, 2].flatMap(() => [0, 1, 2, 3].map((i) => `${i}->kv-${home(i)}`)));
    // What an operator sees on the first worker's admin port.
    const text = await (await fetch(`${workers[0]!.announced['admin']}/metrics`)).text();
    const value = (line: RegExp): number => Number(text.match(line)?.[1] ?? Number.NaN);
    expect(value(/^shuttle_engine_kv_events_total\{provider="[^"]+",kind="events"\} (\d+)$/m)).toBeGreaterThan(0);
    expect(value(/^shuttle_engine_kv_events_total\{provider="[^"]+",kind="bad"\} (\d+)$/m)).toBe(0);
    expect(value(/^shuttle_engine_kv_blocks\{provider="[^"]+"\} (\d+)$/m)).toBeGreaterThan(0);
  });
});
