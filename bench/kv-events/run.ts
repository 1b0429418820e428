import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { BlockTable } from '../../src/engine/kv-events/block-table.js';
import { decodeKvEvents } from '../../src/engine/kv-events/decode.js';
import { KvCacheState } from '../../src/engine/kv-events/kv-events.js';
import { PromptLedger } from '../../src/engine/kv-events/prompt-ledger.js';
import { createLogger } from '../../src/log/log.js';
import { numberOption } from '../common/common.js';

/*
 * bench:kv-events — what following an engine's KV events costs an engine worker, on one core
 * (this process), with the worker's defaults (262,144 blocks, 4,096 prompts, 64-character router
 * blocks) and vLLM's shapes (16-token blocks, sha256 block hashes):
 *   - applying the events: messages of one BlockStored of 16 blocks (256 tokens, a prefill chunk)
 *     and, once the table is full, a BlockRemoved of 16, decoded from msgpack and applied, until
 *     the table has turned over several times;
 *   - recording a prompt: an 8,192-token prompt's text hashed in router blocks and its tokens in
 *     engine blocks (once per generation);
 *   - building the summary the worker publishes (at most every 250 ms) from 4,096 prompts of
 *     2,048 tokens whose blocks are all held;
 *   - a hostile flood: messages of about 4 MB of one-token blocks, applied the way the worker
 *     applies what its subscription hands over, while a timer measures the longest the event
 *     loop was kept from its other work.
 * Options: --messages N (default 100000).
 */
const messages = numberOption('messages', 100_000);
const BLOCK = 16;
const BLOCKS_PER_MESSAGE = 16;
const packr = new Packr({ useRecords: false });
const digest = (n: number): Buffer => createHash('sha256').update(String(n)).digest();

function fmt(ns: number): string {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(1)} µs`;
}

// Events: each message stores a fresh 16-block chain; past the table's size each also removes 16.
const payloads: Uint8Array[] = [];
const variants = 2048;
for (let m = 0; m < variants; m++) {
  const tokens = Array.from({ length: BLOCK * BLOCKS_PER_MESSAGE }, (_, i) => (m * 7919 + i * 31) % 50_000);
  const hashes = Array.from({ length: BLOCKS_PER_MESSAGE }, (_, i) => digest(m * 100 + i));
  const events: unknown[] = [['BlockStored', hashes, null, tokens, BLOCK, null, null]];
  if (m % 2 === 1) events.push(['BlockRemoved', Array.from({ length: BLOCKS_PER_MESSAGE }, (_, i) => digest((m - 1) * 100 + i)), null]);
  payloads.push(packr.pack([Date.now() / 1000, events, 0]));
}
const table = new BlockTable(262_144);
let started = process.hrtime.bigint();
for (let m = 0; m < messages; m++) {
  // Distinct engine hashes per round, so the table keeps turning over.
  for (const event of decodeKvEvents(payloads[m % variants]!)) table.apply(event);
}
let elapsed = Number(process.hrtime.bigint() - started);
const bytes = payloads.reduce((sum, payload) => sum + payload.length, 0) / variants;
console.log(
  `apply: ${messages} messages of ${BLOCKS_PER_MESSAGE} blocks (${Math.round(bytes)} bytes each): ${fmt(elapsed / messages)} a message, ${fmt(elapsed / messages / BLOCKS_PER_MESSAGE)} a block; table ${table.size} blocks`,
);

// A full table that turns over: 300,000 more blocks than it holds, each evicting the oldest.
const turning = new BlockTable(262_144);
started = process.hrtime.bigint();
const rounds = Math.ceil((262_144 + 300_000) / BLOCKS_PER_MESSAGE);
for (let m = 0; m < rounds; m++) {
  const tokens = Array.from({ length: BLOCK * BLOCKS_PER_MESSAGE }, (_, i) => (m + i) % 50_000);
  turning.apply({
    type: 'stored',
    hashes: Array.from({ length: BLOCKS_PER_MESSAGE }, (_, i) => m * 100 + i),
    parent: undefined,
    tokenIds: tokens,
    blockSize: BLOCK,
    loraId: undefined,
  });
}
elapsed = Number(process.hrtime.bigint() - started);
console.log(`turnover: ${rounds * BLOCKS_PER_MESSAGE} blocks into a 262,144-block table: ${fmt(elapsed / (rounds * BLOCKS_PER_MESSAGE))} a block`);

// Recording prompts, then the summary over 4,096 of them with every block held.
const ledger = new PromptLedger({ maxPrompts: 4096, maxPromptTokens: 262_144, maxPromptBlocks: 16_384, maxBlocks: 2 * 1024 * 1024, blockChars: 64 });
const held = new BlockTable(1_000_000);
const longText = 'x'.repeat(8192 * 4);
const longTokens = Array.from({ length: 8192 }, (_, i) => i);
started = process.hrtime.bigint();
for (let i = 0; i < 200; i++) ledger.record(`${i} ${longText}`, longTokens, BLOCK);
elapsed = Number(process.hrtime.bigint() - started);
console.log(`record: an 8,192-token prompt (32 KiB of text): ${fmt(elapsed / 200)}`);
for (let p = 0; p < 4096; p++) {
  const tokens = Array.from({ length: 2048 }, (_, i) => (p * 2048 + i) % 1_000_003);
  ledger.record(`prompt ${p} `.padEnd(8192, 'abcd'), tokens, BLOCK);
  held.apply({
    type: 'stored',
    hashes: Array.from({ length: 128 }, (_, i) => p * 1000 + i),
    parent: undefined,
    tokenIds: tokens,
    blockSize: BLOCK,
    loraId: undefined,
  });
}
const repeats = 50;
let entries = 0;
started = process.hrtime.bigint();
for (let i = 0; i < repeats; i++) entries = ledger.summary(held).length;
elapsed = Number(process.hrtime.bigint() - started);
console.log(`summary: 4,096 prompts of 2,048 tokens, all held: ${fmt(elapsed / repeats)} (${entries} entries)`);

// A flood: ~4 MB messages of one-token blocks, through the worker's own path (KvCacheState.apply).
const flood = {
  chained: packr.pack([
    0,
    Array.from({ length: 23 }, (_, e) => {
      const hashes = Array.from({ length: 20_000 }, (_, i) => 1 + e * 20_000 + i);
      return ['BlockStored', hashes, e === 0 ? null : e * 20_000, hashes.map((hash) => (hash * 7) % 150_000), 1, null, null];
    }),
    0,
  ]),
  single: packr.pack([0, Array.from({ length: 150_000 }, (_, i) => ['BlockStored', [1e7 + i], i === 0 ? null : 1e7 + i - 1, [i % 100], 1, null, null]), 0]),
};
const state = new KvCacheState(
  new BlockTable(262_144),
  new PromptLedger({ maxPrompts: 4096, maxPromptTokens: 262_144, maxPromptBlocks: 16_384, maxBlocks: 2 * 1024 * 1024, blockChars: 64 }),
  createLogger(false, 'server'),
  'bench',
);
for (const [name, payload] of Object.entries(flood)) {
  let longest = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  const before = state.stats.events;
  started = process.hrtime.bigint();
  await state.apply({ seq: BigInt(started), payload });
  elapsed = Number(process.hrtime.bigint() - started);
  clearInterval(probe);
  console.log(
    `flood (${name}): a ${(payload.length / 1e6).toFixed(1)} MB message, ${state.stats.events - before} events: applied over ${fmt(elapsed)}, the event loop held at most ${longest.toFixed(1)} ms at a time`,
  );
}
