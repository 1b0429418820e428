/*
 * The KV-cache events vLLM publishes (`--kv-events-config`, `vllm.distributed.kv_events`), and
 * SGLang in the same format, read from one message payload. The payload is msgspec's msgpack
 * with `array_like=True`: a batch is `[ts, events, data_parallel_rank?]` and each event is its
 * class name followed by its fields in order —
 *   ['BlockStored', block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, …]
 *   ['BlockRemoved', block_hashes, medium, …]
 *   ['AllBlocksCleared', …]
 * Fields that newer engines append are ignored; an engine hash is an int (older vLLM) or bytes
 * (a sha256 digest). Everything here comes off the network: any shape other than this one is a
 * clear error naming the event and field, never a crash, and nothing is allocated beyond what the
 * payload (already bounded by the socket's message cap) holds: every value decoded is spelled
 * out in it, none is a reference to another.
 *
 * Events are decoded one at a time ({@link kvEvents}), each from its own bytes, so that a worker
 * can stop between them: decoding a whole 4 MiB message of one-token blocks at once had taken
 * 160–260 ms before any of it was applied.
 */

import { Unpackr } from 'msgpackr';
import { fmix } from '../../loadbalance/hash.js';
import { arrayHeader, kindAt, skipValue } from './msgpack-walk.js';

/** A block stored in the engine's cache, `block_size` tokens each, chained to its parent. */
export interface BlockStoredEvent {
  readonly type: 'stored';
  /** The engine's hash of each block, as a number ({@link engineHashKey}). */
  readonly hashes: readonly number[];
  /** The engine's hash of the block before the first one; undefined for a prompt's first block. */
  readonly parent: number | undefined;
  /** The tokens of all the blocks, `block_size` per block, in order. */
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  /** The LoRA adapter the blocks were computed under, if any. */
  readonly loraId: number | undefined;
}

/** Blocks evicted from the engine's cache. */
export interface BlockRemovedEvent {
  readonly type: 'removed';
  readonly hashes: readonly number[];
}

/** The engine dropped its whole cache (a reset or a restart). */
export interface AllClearedEvent {
  readonly type: 'cleared';
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllClearedEvent;

/**
 * The most bytes one event may take. vLLM sends one BlockStored per sequence per step: a
 * 64k-token prefill chunk's, with 32-bit token ids and sha256 hashes, is about 470 KB. Decoding
 * 512 KiB takes a few milliseconds; a larger event is refused with the rest of its message.
 */
export const MAX_EVENT_BYTES = 512 * 1024;

/** A block size no engine uses; beyond it an event is refused. */
const MAX_BLOCK_SIZE = 4096;

/*
 * msgpackr's own extensions are off: records, and the structured-clone ids and pointers with
 * which a few hundred bytes could name one large array thousands of times (so the decoded value,
 * and the work on it, would no longer be bounded by the payload's size).
 */
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'bigint', structuredClone: false });

/**
 * The events of one payload, in order, each decoded when it is asked for. Throws an Error saying
 * what is wrong (which event, which field, what was there) for anything but the format above,
 * when the walk reaches it: the events before it have been given out. A medium other than the
 * GPU's (a CPU or disk tier of an offloading connector) keys its blocks apart, so evicting a
 * block from one tier does not forget the other.
 */
export function* kvEvents(payload: Uint8Array): Generator<KvEvent, void, undefined> {
  const batch = arrayHeader(payload, 0);
  if (batch === undefined || batch.length < 2) throw new Error(`a batch is [ts, events, …], got ${kindAt(payload, 0)}`);
  const at = walk(() => skipValue(payload, batch.first, payload.length));
  if (at === -1) throw new Error('not msgpack: the payload ends inside a value');
  const events = arrayHeader(payload, at);
  if (events === undefined) throw new Error(`a batch is [ts, events, …], got events ${kindAt(payload, at)}`);
  let pos = events.first;
  for (let i = 0; i < events.length; i++) {
    const end = walk(() => skipValue(payload, pos, pos + MAX_EVENT_BYTES), `event ${i}`);
    if (end === -1) throw new Error(`event ${i} is over ${MAX_EVENT_BYTES} bytes; it and the rest of its message are dropped`);
    let raw: unknown;
    try {
      raw = unpackr.unpack(payload.subarray(pos, end));
    } catch (error) {
      throw new Error(`not msgpack: ${(error as Error).message}`);
    }
    pos = end;
    yield decodeEvent(raw, i);
  }
}

/** All the events of one payload (see {@link kvEvents}); throws for the first thing wrong. */
export function decodeKvEvents(payload: Uint8Array): KvEvent[] {
  return [...kvEvents(payload)];
}

/** A position the msgpack walk found; its failure as `not msgpack: …`. */
function walk(step: () => number, where?: string): number {
  try {
    return step();
  } catch (error) {
    throw new Error(`not msgpack: ${where === undefined ? '' : `${where}: `}${(error as Error).message}`);
  }
}

function decodeEvent(event: unknown, index: number): KvEvent {
  if (!Array.isArray(event) || typeof event[0] !== 'string') throw new Error(`event ${index} is not [type, …fields], got ${describe(event)}`);
  const where = `event ${index} (${event[0].slice(0, 40)})`;
  switch (event[0]) {
    case 'BlockStored': {
      const medium = mediumSeed(event[6], where);
      const hashes = hashList(event[1], where, medium);
      const parent = event[2] === null || event[2] === undefined ? undefined : engineHashKey(event[2], `${where} parent_block_hash`, medium);
      const blockSize = event[4];
      if (!Number.isInteger(blockSize) || (blockSize as number) < 1 || (blockSize as number) > MAX_BLOCK_SIZE) {
        throw new Error(`${where}: block_size must be an integer in 1..${MAX_BLOCK_SIZE}, got ${describe(blockSize)}`);
      }
      const tokenIds = event[3];
      if (!Array.isArray(tokenIds) || tokenIds.length !== hashes.length * (blockSize as number)) {
        throw new Error(
          `${where}: token_ids must hold block_size x ${hashes.length} blocks = ${hashes.length * (blockSize as number)} tokens, got ${describe(tokenIds)}`,
        );
      }
      for (const token of tokenIds) {
        if (!Number.isInteger(token) || token < 0 || token > 0xffffffff)
          throw new Error(`${where}: token_ids must be non-negative 32-bit integers, got ${describe(token)}`);
      }
      const lora = event[5];
      if (lora !== null && lora !== undefined && !Number.isInteger(lora))
        throw new Error(`${where}: lora_id must be an integer or null, got ${describe(lora)}`);
      return { type: 'stored', hashes, parent, tokenIds: tokenIds as number[], blockSize: blockSize as number, loraId: (lora as number | null) ?? undefined };
    }
    case 'BlockRemoved': {
      const medium = mediumSeed(event[2], where);
      return { type: 'removed', hashes: hashList(event[1], where, medium) };
    }
    case 'AllBlocksCleared':
      return { type: 'cleared' };
    default:
      throw new Error(`${where}: unknown event type; known: BlockStored, BlockRemoved, AllBlocksCleared`);
  }
}

function hashList(value: unknown, where: string, medium: number): number[] {
  if (!Array.isArray(value) || value.length === 0) throw new Error(`${where}: block_hashes must be a non-empty array, got ${describe(value)}`);
  return value.map((hash) => engineHashKey(hash, `${where} block_hashes`, medium));
}

/**
 * An engine block hash — an int of up to 64 bits, or bytes — as a 53-bit number (exact in JS),
 * mixed with `medium` (0 for the GPU). Two different hashes share a key about once in 2^53
 * pairs: a wrong claim of one cached block, never a wrong answer.
 */
export function engineHashKey(hash: unknown, where: string, medium = 0): number {
  let lo: number;
  let hi: number;
  if (typeof hash === 'number' && Number.isSafeInteger(hash)) {
    lo = hash >>> 0;
    hi = Math.floor(Math.abs(hash) / 0x100000000) >>> 0;
    if (hash < 0) hi ^= 0x80000000;
  } else if (typeof hash === 'bigint') {
    const bits = BigInt.asUintN(64, hash);
    lo = Number(bits & 0xffffffffn);
    hi = Number(bits >> 32n);
  } else if (hash instanceof Uint8Array && hash.length > 0 && hash.length <= 64) {
    lo = 0x811c9dc5;
    hi = 0x2f1a5b3c;
    for (let i = 0; i < hash.length; i++) {
      lo = Math.imul(lo ^ hash[i]!, 0x01000193);
      hi = Math.imul(hi ^ hash[i]!, 0x5bd1e995);
    }
  } else {
    throw new Error(`${where}: a block hash must be an integer or 1..64 bytes, got ${describe(hash)}`);
  }
  const a = fmix((lo ^ medium) >>> 0);
  const b = fmix((hi ^ a ^ 0x9e3779b9) >>> 0);
  return (b & 0x1fffff) * 0x100000000 + a;
}

/** 0 for the GPU (or no medium named), else a 32-bit tag of the tier's name. */
function mediumSeed(medium: unknown, where: string): number {
  if (medium === null || medium === undefined) return 0;
  if (typeof medium !== 'string' || medium.length > 64) throw new Error(`${where}: medium must be a short string or null, got ${describe(medium)}`);
  if (medium.toUpperCase() === 'GPU') return 0;
  let seed = 0x811c9dc5;
  for (let i = 0; i < medium.length; i++) seed = Math.imul(seed ^ medium.charCodeAt(i), 0x01000193);
  return fmix(seed) | 1;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}
