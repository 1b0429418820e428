import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';

/** Options of a fake engine's prefix cache ({@link FakeEngineOptions.kvCache}). */
export interface FakeKvCacheOptions {
  /** Tokens per block; 16 (vLLM's default) by default. */
  blockSize?: number;
  /** Blocks the cache holds before it evicts the least recently used; 1,000 by default. */
  capacityBlocks?: number;
  /** Topic of the published events; '' (vLLM's default) by default. */
  topic?: string;
  /** Whether `return_token_ids` is honoured (vLLM 0.10.2 and later); true by default. */
  returnTokenIds?: boolean;
  /** Whether `POST /tokenize` is served (vLLM's, at the server root); true by default. */
  tokenizeEndpoint?: boolean;
}

/**
 * The prefix cache of a fake engine, and its KV events as vLLM publishes them: a ZeroMQ PUB
 * socket sending `[topic, seq (8 bytes, big-endian), payload]`, the payload msgspec's
 * array-like msgpack `[ts, [['BlockStored', hashes, parent, token_ids, block_size, lora_id,
 * medium], …], dp_rank]`, block hashes as 32-byte sha256 digests chained through the parent.
 * Prompts are tokenized the fake way: a chat's messages go through a template
 * (`<|role|>` … `<|end|>`), and text becomes one token per 4 characters.
 */
export class FakeKvCache {
  readonly endpoint: string;
  readonly #socket: import('zeromq').Publisher;
  readonly #blockSize: number;
  readonly #capacity: number;
  readonly #topic: string;
  /** Block hash (hex) → its digest, least recently used first. */
  readonly #blocks = new Map<string, Buffer>();
  readonly #packr = new Packr({ useRecords: false });
  #seq = 0n;
  /** Messages sent (a send after close() is dropped). */
  sent = 0;

  private constructor(socket: import('zeromq').Publisher, options: FakeKvCacheOptions) {
    this.#socket = socket;
    this.endpoint = socket.lastEndpoint ?? '';
    this.#blockSize = options.blockSize ?? 16;
    this.#capacity = options.capacityBlocks ?? 1000;
    this.#topic = options.topic ?? '';
  }

  /** Binds the publisher on a free loopback port. */
  static async start(options: FakeKvCacheOptions): Promise<FakeKvCache> {
    const zmq = await import('zeromq');
    const socket = new zmq.Publisher();
    await socket.bind('tcp://127.0.0.1:*');
    return new FakeKvCache(socket, options);
  }

  /** Blocks held now. */
  get size(): number {
    return this.#blocks.size;
  }

  /**
   * Runs a prompt through the cache: its full blocks are looked up in order, the missing ones
   * stored (and published), the least recently used evicted beyond capacity (and published).
   * Returns the prompt's token ids and how many of them were already cached.
   */
  async prefill(body: Record<string, unknown>): Promise<{ tokenIds: number[]; cachedTokens: number }> {
    const tokenIds = tokenize(body);
    const size = this.#blockSize;
    let parent: Buffer | undefined;
    let cachedBlocks = 0;
    const blocks: Array<{ key: string; hash: Buffer; parent: Buffer | undefined; tokens: number[] }> = [];
    for (let i = 0; i + size <= tokenIds.length; i += size) {
      const tokens = tokenIds.slice(i, i + size);
      const hash = createHash('sha256')
        .update(parent ?? Buffer.alloc(0))
        .update(Buffer.from(new Uint32Array(tokens).buffer))
        .digest();
      const key = hash.toString('hex');
      if (cachedBlocks === blocks.length && this.#blocks.has(key)) cachedBlocks++;
      blocks.push({ key, hash, parent, tokens });
      parent = hash;
    }
    const stored = blocks.filter((block) => !this.#blocks.has(block.key));
    // Used most recently last block first, so a prompt's first blocks, which others share, are
    // the last to be evicted (as vLLM frees a sequence's blocks from its tail).
    for (let i = blocks.length - 1; i >= 0; i--) {
      this.#blocks.delete(blocks[i]!.key);
      this.#blocks.set(blocks[i]!.key, blocks[i]!.hash);
    }
    const removed: Buffer[] = [];
    while (this.#blocks.size > this.#capacity) {
      const [key, hash] = this.#blocks.entries().next().value as [string, Buffer];
      this.#blocks.delete(key);
      removed.push(hash);
    }
    const events: unknown[] = [];
    // One BlockStored per run of blocks chained to one parent, as vLLM sends a sequence's new blocks.
    for (let i = 0; i < stored.length; ) {
      let j = i + 1;
      while (j < stored.length && stored[j]!.parent === stored[j - 1]!.hash) j++;
      const run = stored.slice(i, j);
      events.push(['BlockStored', run.map((block) => block.hash), run[0]!.parent ?? null, run.flatMap((block) => block.tokens), size, null, null]);
      i = j;
    }
    if (removed.length > 0) events.push(['BlockRemoved', removed, null]);
    if (events.length > 0) await this.#publish(events);
    return { tokenIds, cachedTokens: cachedBlocks * size };
  }

  /** Drops every block and publishes AllBlocksCleared (an engine's cache reset). */
  async clear(): Promise<void> {
    this.#blocks.clear();
    await this.#publish([['AllBlocksCleared']]);
  }

  close(): void {
    this.#socket.close();
  }

  async #publish(events: unknown[]): Promise<void> {
    if (this.#socket.closed) return;
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(this.#seq++);
    await this.#socket.send([this.#topic, seq, this.#packr.pack([Date.now() / 1000, events, 0])]);
    this.sent++;
  }
}

/** The fake tokenizer: a chat template around each message, then one token per 4 characters. */
export function tokenize(body: Record<string, unknown>): number[] {
  const text = Array.isArray(body.messages)
    ? `${(body.messages as Array<{ role?: unknown; content?: unknown }>).map((message) => `<|${String(message?.role)}|>${String(message?.content)}<|end|>`).join('')}<|assistant|>`
    : String(body.prompt ?? '');
  const ids: number[] = [];
  for (let i = 0; i < text.length; i += 4) {
    let id = 0;
    for (let j = i; j < Math.min(i + 4, text.length); j++) id = (id * 31 + text.charCodeAt(j)) % 50_000;
    ids.push(id);
  }
  return ids;
}
