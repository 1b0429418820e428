import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../../src/log/log.js';
import { KvCacheState } from '../../../src/engine/kv-events/kv-events.js';
import { BlockTable, chainSeed, tokenBlockHash } from '../../../src/engine/kv-events/block-table.js';
import { type BlockRemovedEvent, type BlockStoredEvent, decodeKvEvents, engineHashKey } from '../../../src/engine/kv-events/decode.js';
import { PromptLedger } from '../../../src/engine/kv-events/prompt-ledger.js';
import { summaryMatch } from '../../../src/loadbalance/cache-summary.js';
import { prefixBlockHashes } from '../../../src/loadbalance/hash.js';
import { MAX_CACHE_SUMMARY } from '../../../src/registry/instance.js';
import { tokenize } from '../../../src/testing/fake-kv-cache.js';

/*
 * Following an engine's KV events: reading vLLM's event format (and refusing anything else with
 * an error that says what is wrong), keeping the engine's cached token blocks, and translating
 * them into the balancers' text-block summary through the prompts the worker forwarded.
 */
const packr = new Packr({ useRecords: false, largeBigIntToFloat: false });
const batch = (...events: unknown[]): Uint8Array => packr.pack([1733270000.5, events, 0]);
const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The BlockStored event vLLM would send for `tokens` cut into `size`-token blocks after `parent`. */
function stored(tokens: number[], size: number, from = 0, to = Math.floor(tokens.length / size), parent: Buffer | null = null, name = 'p') {
  const hashes = Array.from({ length: to - from }, (_, i) => digest(`${name}/${from + i}`));
  return ['BlockStored', hashes, parent ?? (from === 0 ? null : digest(`${name}/${from - 1}`)), tokens.slice(from * size, to * size), size, null, null];
}

describe('decodeKvEvents', () => {
  it("reads vLLM's array-like batch: stored, removed and cleared events, int, 64-bit and byte hashes, fields appended by newer engines", () => {
    const events = decodeKvEvents(
      batch(
        ['BlockStored', [7, 2n ** 63n + 5n], null, [1, 2, 3, 4], 2, null, null, 'extra-field-of-a-newer-vllm'],
        ['BlockStored', [digest('x')], 7, [5, 6], 2, 3, 'GPU'],
        ['BlockRemoved', [7], null],
        ['AllBlocksCleared'],
      ),
    );
    expect(events.map((event) => event.type)).toEqual(['stored', 'stored', 'removed', 'cleared']);
    const [first, second, removed] = events as [BlockStoredEvent, BlockStoredEvent, BlockRemovedEvent];
    expect(first).toMatchObject({ parent: undefined, tokenIds: [1, 2, 3, 4], blockSize: 2, loraId: undefined });
    expect(first.hashes).toEqual([engineHashKey(7, ''), engineHashKey(2n ** 63n + 5n, '')]);
    expect(second).toMatchObject({ parent: engineHashKey(7, ''), loraId: 3 });
    expect(removed.hashes).toEqual([engineHashKey(7, '')]);
    for (const key of [...first.hashes, ...second.hashes]) expect(Number.isSafeInteger(key)).toBe(true);
  });

  it("refuses msgpackr's structured-clone references, with which a small payload names one array many times", () => {
    const tokens = Array.from({ length: 1000 }, (_, i) => i);
    const event = ['BlockStored', [1], null, tokens, 1000, null, null];
    const cloning = new Packr({ useRecords: false, structuredClone: true });
    const payload = cloning.pack([0, [event, event, event, event], 0]);
    expect(payload.length).toBeLessThan(8000);
    expect(() => decodeKvEvents(payload)).toThrow(/^not msgpack: .*[Ss]tructured clone/);
  });

  it('keys a block of another tier (CPU offload) apart from the same block on the GPU', () => {
    const removed = (...events: unknown[]) => decodeKvEvents(batch(...events)) as BlockRemovedEvent[];
    const [gpu, cpu] = removed(['BlockRemoved', [digest('b')], 'GPU'], ['BlockRemoved', [digest('b')], 'CPU']);
    expect(gpu!.hashes[0]).not.toBe(cpu!.hashes[0]);
    expect(removed(['BlockRemoved', [digest('b')], null])[0]!.hashes[0]).toBe(gpu!.hashes[0]);
  });

  it.each([
    [Buffer.from('not msgpack at all'), /^not msgpack|a batch is \[ts, events, …\]/],
    [packr.pack({ ts: 1, events: [] }), /a batch is \[ts, events, …\], got an object/],
    [batch(['BlockMoved', [1]]), /event 0 \(BlockMoved\): unknown event type; known: BlockStored, BlockRemoved, AllBlocksCleared/],
    [batch('BlockStored'), /event 0 is not \[type, …fields\], got string BlockStored/],
    [
      batch(['BlockStored', [1, 2], null, [1, 2, 3], 2, null, null]),
      /event 0 \(BlockStored\): token_ids must hold block_size x 2 blocks = 4 tokens, got an array of 3/,
    ],
    [batch(['BlockStored', [1], null, [1, 2], 0, null, null]), /block_size must be an integer in 1\.\.4096, got number 0/],
    [batch(['BlockStored', [1], null, [1, -2], 2, null, null]), /token_ids must be non-negative 32-bit integers, got number -2/],
    [batch(['BlockStored', [], null, [], 2, null, null]), /block_hashes must be a non-empty array, got an array of 0/],
    [batch(['BlockRemoved', ['abc'], null]), /event 0 \(BlockRemoved\) block_hashes: a block hash must be an integer or 1\.\.64 bytes, got string abc/],
    [batch(['BlockRemoved', [1.5], null]), /a block hash must be an integer or 1\.\.64 bytes, got number 1\.5/],
    [batch(['BlockRemoved', [Buffer.alloc(65)], null]), /got 65 bytes/],
    [batch(['BlockRemoved', [1], 42]), /medium must be a short string or null, got number 42/],
    [batch(['BlockStored', [1], null, [1, 2], 2, 'lora', null]), /lora_id must be an integer or null, got string lora/],
  ])('refuses a malformed payload with what is wrong (%#)', (payload, message) => {
    expect(() => decodeKvEvents(payload)).toThrow(message);
  });
});

describe('BlockTable', () => {
  const tokens = Array.from({ length: 64 }, (_, i) => 1000 + i);
  /** Our chain hashes of `tokens` in blocks of 4. */
  const ours = (() => {
    const out: number[] = [];
    let parent = chainSeed(undefined);
    for (let i = 0; i < 16; i++) out.push((parent = tokenBlockHash(tokens, i * 4, i * 4 + 4, parent)));
    return out;
  })();

  it('holds the blocks an engine stored, chained over several events, and forgets removed and cleared ones', () => {
    const table = new BlockTable(1000);
    for (const event of decodeKvEvents(batch(stored(tokens, 4, 0, 10), stored(tokens, 4, 10, 16)))) table.apply(event);
    expect(table.blockSize).toBe(4);
    expect(ours.every((hash) => table.holds(hash))).toBe(true);
    for (const event of decodeKvEvents(batch(['BlockRemoved', [digest('p/15'), digest('p/14')], null]))) table.apply(event);
    expect(ours.map((hash) => table.holds(hash))).toEqual([...Array(14).fill(true), false, false]);
    for (const event of decodeKvEvents(batch(['AllBlocksCleared']))) table.apply(event);
    expect(table.size).toBe(0);
    expect(ours.some((hash) => table.holds(hash))).toBe(false);
  });

  it('does not chain blocks whose parent it never saw', () => {
    const table = new BlockTable(1000);
    for (const event of decodeKvEvents(batch(stored(tokens, 4, 4, 8)))) table.apply(event);
    expect(table.orphans).toBe(4);
    expect(table.size).toBe(0);
  });

  it('takes another block size for another engine: the table empties and follows the new one; a clear forgets the size', () => {
    const table = new BlockTable(1000);
    for (const event of decodeKvEvents(batch(stored(tokens, 4, 0, 16)))) table.apply(event);
    table.apply(decodeKvEvents(batch(stored(tokens, 8, 0, 2, null, 'other')))[0]!);
    expect(table).toMatchObject({ blockSize: 8, blockSizeChanges: 1, size: 2 });
    expect(ours.some((hash) => table.holds(hash))).toBe(false);
    table.apply(decodeKvEvents(batch(['AllBlocksCleared']))[0]!);
    expect(table.blockSize).toBe(0);
    for (const event of decodeKvEvents(batch(stored(tokens, 4, 0, 16)))) table.apply(event);
    expect(table).toMatchObject({ blockSize: 4, blockSizeChanges: 1, size: 16 });
  });

  it('stays within maxBlocks, forgetting the oldest stored, also after removals and blocks stored again', () => {
    const table = new BlockTable(5);
    for (const event of decodeKvEvents(batch(stored(tokens, 4, 0, 16)))) table.apply(event);
    expect(table.size).toBe(5);
    expect(ours.map((hash) => table.holds(hash))).toEqual([...Array(11).fill(false), ...Array(5).fill(true)]);
    // Turn a small table over many times, with removals between: it holds exactly the newest.
    const small = new BlockTable(50);
    for (let round = 0; round < 2000; round++) {
      const ids = Array.from({ length: 8 }, (_, i) => round * 8 + i);
      for (const event of decodeKvEvents(batch(stored(ids, 4, 0, 2, null, `r${round}`)))) small.apply(event);
      if (round % 3 === 0) small.apply(decodeKvEvents(batch(['BlockRemoved', [digest(`r${round}/1`)], null]))[0]!);
    }
    expect(small.size).toBe(50);
    const newest = (round: number) =>
      tokenBlockHash(
        Array.from({ length: 8 }, (_, i) => round * 8 + i),
        0,
        4,
        chainSeed(undefined),
      );
    expect(small.holds(newest(1999))).toBe(true);
    expect(small.holds(newest(1975))).toBe(true);
    expect(small.holds(newest(1900))).toBe(false);
  });

  it('keeps a LoRA adapter’s blocks apart from the base model’s', () => {
    const table = new BlockTable(100);
    table.apply(decodeKvEvents(batch(['BlockStored', [digest('l')], null, tokens.slice(0, 4), 4, 7, null]))[0]!);
    expect(table.holds(ours[0]!)).toBe(false);
    expect(table.holds(tokenBlockHash(tokens, 0, 4, chainSeed(7)))).toBe(true);
  });
});

describe('PromptLedger: the engine cache in the balancers’ terms', () => {
  const system = `system: ${'You are a helpful assistant who answers questions about the product manual. '.repeat(50)}`.slice(0, 4096);
  const promptA = `${system}\nuser: how do I reset it?`;
  const promptB = `${system.slice(0, 2048)}${'different text that diverges from the system prompt. '.repeat(40)}`;
  const body = (prompt: string) => ({ prompt });
  const idsA = tokenize(body(promptA));

  /** A table holding the first `blocks` 16-token blocks of prompt A. */
  function tableWith(blocks: number): BlockTable {
    const table = new BlockTable(100_000);
    if (blocks > 0) for (const event of decodeKvEvents(batch(stored(idsA, 16, 0, blocks)))) table.apply(event);
    return table;
  }
  const ledgerWithA = () => {
    const ledger = new PromptLedger({ maxPrompts: 100, maxPromptTokens: 1_000_000, maxPromptBlocks: 100_000, maxBlocks: 1_000_000, blockChars: 64 });
    ledger.record(promptA, idsA, 16);
    return ledger;
  };
  const match = (summary: readonly number[], prompt: string) => summaryMatch(prefixBlockHashes(prompt, 64, 4096), new Set(summary));

  it('publishes a wholly cached prompt to within the landmarks’ 25 %, and the shared prefix of another prompt exactly', () => {
    const fullBlocks = Math.floor(idsA.length / 16);
    const summary = ledgerWithA().summary(tableWith(fullBlocks));
    const textBlocks = Math.floor(promptA.length / 64);
    expect(match(summary, promptA)).toBeGreaterThanOrEqual(Math.floor(textBlocks * 0.75));
    expect(match(summary, promptA)).toBeLessThanOrEqual(textBlocks);
    // B shares A's first 2,048 characters (32 blocks, a landmark): exactly those are cached for it.
    expect(match(summary, promptB)).toBe(32);
    expect(match(summary, 'user: an unrelated prompt '.repeat(40))).toBe(0);
  });

  it('shrinks as the engine evicts the prompt’s tail, and is empty once nothing of it is held', () => {
    const fullBlocks = Math.floor(idsA.length / 16);
    const half = ledgerWithA().summary(tableWith(Math.floor(fullBlocks / 2)));
    const matched = match(half, promptA);
    const halfText = promptA.length / 2 / 64;
    expect(matched).toBeGreaterThanOrEqual(Math.floor(halfText * 0.75));
    expect(matched).toBeLessThanOrEqual(Math.ceil(halfText));
    expect(ledgerWithA().summary(tableWith(0))).toEqual([]);
  });

  it('never claims more than is cached: a prompt held only in its first block publishes at most that much text', () => {
    const summary = ledgerWithA().summary(tableWith(1));
    // 16 tokens of about 4 characters: 64 characters, one router block at most.
    expect(match(summary, promptA)).toBeLessThanOrEqual(1);
  });

  it('keeps at most maxPromptBlocks hashes of one prompt and maxBlocks in all, forgetting the oldest prompts', () => {
    const ledger = new PromptLedger({ maxPrompts: 100, maxPromptTokens: 1_000_000, maxPromptBlocks: 40, maxBlocks: 100, blockChars: 64 });
    const table = new BlockTable(100_000);
    for (const event of decodeKvEvents(batch(stored(idsA, 16, 0, Math.floor(idsA.length / 16))))) table.apply(event);
    ledger.record(promptA, idsA, 16);
    // 40 of its 64 blocks are tracked: the text up to 40 x 16 tokens, about 40 router blocks.
    const capped = match(ledger.summary(table), promptA);
    expect(capped).toBeGreaterThanOrEqual(32);
    expect(capped).toBeLessThanOrEqual(40);
    for (let i = 0; i < 3; i++) ledger.record(`other ${i} `.padEnd(4096, 'y'), tokenize(body(`other ${i} `.padEnd(4096, 'y'))), 16);
    // Three more prompts of 40 blocks: 160 > 100, so the oldest two go, A among them.
    expect(ledger.size).toBe(2);
    expect(match(ledger.summary(table), promptA)).toBe(0);
  });

  it('is bounded: at most maxPrompts prompts and MAX_CACHE_SUMMARY hashes, the most recent first', () => {
    const ledger = new PromptLedger({ maxPrompts: 300, maxPromptTokens: 1_000_000, maxPromptBlocks: 100_000, maxBlocks: 1_000_000, blockChars: 64 });
    const table = new BlockTable(1_000_000);
    for (let i = 0; i < 400; i++) {
      const prompt = `prompt ${i} `.padEnd(2048, `${i}x`);
      const ids = tokenize(body(prompt));
      ledger.record(prompt, ids, 16);
      for (const event of decodeKvEvents(batch(stored(ids, 16, 0, Math.floor(ids.length / 16), null, `q${i}`)))) table.apply(event);
    }
    expect(ledger.size).toBe(300);
    const summary = ledger.summary(table);
    expect(summary.length).toBeLessThanOrEqual(MAX_CACHE_SUMMARY);
    expect(new Set(summary).size).toBe(summary.length);
    const newest = `prompt 399 `.padEnd(2048, '399x');
    expect(summary.slice(0, 20)).toContain(prefixBlockHashes(newest, 64, 4096)[0]);
    expect(match(summary, `prompt 0 `.padEnd(2048, '0x'))).toBe(0);
  });
});

describe('KvCacheState: an engine that publishes nothing', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A state following an endpoint that never sends anything, on fake timers, and the warnings it logs. */
  function silentEngine() {
    vi.useFakeTimers();
    const warnings: string[] = [];
    const log = { warn: (message: string) => warnings.push(message) } as unknown as Logger;
    const ledger = new PromptLedger({ maxPrompts: 10, maxPromptTokens: 1000, maxPromptBlocks: 100, maxBlocks: 1000, blockChars: 64 });
    return { state: new KvCacheState(new BlockTable(100), ledger, log, 'tcp://127.0.0.1:5557'), warnings };
  }

  it('says once, 30 s after the first prompt, that no event came, naming the endpoint and how to turn them on', () => {
    const { state, warnings } = silentEngine();
    state.recordPrompt(
      'x'.repeat(256),
      Array.from({ length: 64 }, (_, i) => i),
    );
    state.recordPrompt(
      'y'.repeat(256),
      Array.from({ length: 64 }, (_, i) => i + 1),
    );
    vi.advanceTimersByTime(29_000);
    expect(warnings).toEqual([]);
    vi.advanceTimersByTime(2_000);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/none came from tcp:\/\/127\.0\.0\.1:5557 in 30 s of generations; .*--kv-events-config/);
    vi.advanceTimersByTime(120_000);
    expect(warnings).toHaveLength(1);
    state.close();
  });

  it('says nothing once closed', () => {
    const { state, warnings } = silentEngine();
    state.recordPrompt(
      'x'.repeat(256),
      Array.from({ length: 64 }, (_, i) => i),
    );
    state.close();
    vi.advanceTimersByTime(60_000);
    expect(warnings).toEqual([]);
  });
});
