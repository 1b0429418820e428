import { checkInt } from '../common/validate.js';
import { RpcCode, RpcError } from '../errors/errors.js';

/**
 * What one payload may make a process build when it is decoded. A payload's wire size is
 * already capped by `maxFrameBytes`, but decoding can multiply it: one msgpack byte (0x80) is a
 * whole JS object of about 64 bytes, so 8 MiB of empty maps decoded to ~580 MB and stalled the
 * event loop for 1.6 s before these limits. Each limit is checked while the payload is walked,
 * before the decoder sees it, so a refused payload costs one linear scan and no allocation.
 */
export interface DecodeLimits {
  /** Deepest nesting of arrays and maps (objects). */
  readonly maxDepth: number;
  /** Values in the whole payload (every scalar, string and container counts one). */
  readonly maxElements: number;
  /**
   * Entries of one map or object. A single map with many distinct keys is built in V8's slow
   * dictionary mode: 1,000,000 keys took 2.5 s to decode on a 2-core machine, 16,384 take ~40 ms.
   */
  readonly maxMapKeys: number;
  /** Bytes of one integer beyond 64 bits (msgpack's BigInt extension): 1 KiB is 8,192 bits. */
  readonly maxBigIntBytes: number;
  /** Estimated bytes the decoded value may take, whatever the payload's size. */
  readonly maxDecodedBytes: number;
  /**
   * Estimated decoded bytes per wire byte, beyond a 64 KiB allowance: the fixed multiple of its
   * size that no payload can exceed, so small frames cannot be amplified either. 24 lets through
   * arrays of small objects as msgpackr packs them (`{ x: 'abcdefgh' }` 10x, `{ id: 7, score:
   * 0.5 }` 8x, `{ x: 1 }` 18x) and refuses arrays of empty maps (64x), empty binaries (52x),
   * empty arrays (40x) and one-element arrays (32x). (`{ x: 1 }` in its tightest 4-byte form
   * prices at 26x: each key is priced as a string of its own, though the decoder shares
   * repeated short keys.)
   */
  readonly maxDecodeRatio: number;
}

/** Defaults chosen from measurements (docs/HARDENING.md, "Decoding budgets"). */
export const DEFAULT_DECODE_LIMITS: DecodeLimits = {
  maxDepth: 64,
  maxElements: 1_000_000,
  maxMapKeys: 16_384,
  maxBigIntBytes: 1024,
  maxDecodedBytes: 32 * 1024 * 1024,
  maxDecodeRatio: 24,
};

/** The option keys of {@link DecodeLimits}, accepted by the msgpack and json serializers. */
export const DECODE_LIMIT_KEYS = Object.keys(DEFAULT_DECODE_LIMITS) as readonly (keyof DecodeLimits)[];

/** Reads decode limits from serializer options (`where` names them in errors), defaults for the rest. */
export function resolveDecodeLimits(where: string, options: Readonly<Record<string, unknown>>): DecodeLimits {
  const limits: Record<string, number> = { ...DEFAULT_DECODE_LIMITS };
  for (const key of DECODE_LIMIT_KEYS) {
    limits[key] = checkInt(`${where} ${key}`, options[key], 1, 2 ** 40, DEFAULT_DECODE_LIMITS[key]);
  }
  return limits as unknown as DecodeLimits;
}

/*
 * Estimated heap bytes of decoded values, measured with V8 on Node 20 (heapUsed after decoding a
 * million of each): a slot in its parent 8, an empty object 56, an empty array 32, a boxed
 * double 16, a string 24 plus its bytes, a Buffer or typed array about 96 plus its bytes.
 */
/** Bytes of a scalar held in its parent (small integer, boolean, null). */
export const COST_SCALAR = 8;
/** Bytes of a double that is not a small integer (a heap number and its slot). */
export const COST_DOUBLE = 24;
/** Bytes of an empty object or map, with its slot. */
export const COST_OBJECT = 64;
/** Bytes of an empty array, with its slot. */
export const COST_ARRAY = 40;
/** Bytes of a string before its characters, with its slot. */
export const COST_STRING = 32;
/** Bytes of binary data or a typed array before its contents, with its slot. */
export const COST_BINARY = 104;

/**
 * Counts a payload's values and estimated decoded bytes while a guard walks it, and throws the
 * moment a limit is passed (RESOURCE_EXHAUSTED, naming the limit and the option to raise).
 */
export class DecodeCost {
  readonly #limits: DecodeLimits;
  readonly #maxBytes: number;
  #elements = 0;
  #bytes = 0;

  constructor(limits: DecodeLimits, wireBytes: number) {
    this.#limits = limits;
    this.#maxBytes = Math.min(limits.maxDecodedBytes, limits.maxDecodeRatio * wireBytes + 64 * 1024);
  }

  /** Estimated decoded bytes so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** One value of `bytes` estimated decoded bytes. */
  add(bytes: number): void {
    if (++this.#elements > this.#limits.maxElements) {
      throw decodeLimitError(`more than ${this.#limits.maxElements} values`, 'maxElements');
    }
    this.#bytes += bytes;
    if (this.#bytes > this.#maxBytes) {
      const which = this.#maxBytes === this.#limits.maxDecodedBytes ? 'maxDecodedBytes' : 'maxDecodeRatio';
      throw decodeLimitError(`would decode to more than ${this.#maxBytes} bytes`, which);
    }
  }

  /** Checks the entry count of one map or object. */
  mapKeys(count: number): void {
    if (count > this.#limits.maxMapKeys) throw decodeLimitError(`a map of ${count} keys, more than ${this.#limits.maxMapKeys}`, 'maxMapKeys');
  }

  /** Checks the byte length of one big integer. */
  bigInt(bytes: number): void {
    if (bytes > this.#limits.maxBigIntBytes) throw decodeLimitError(`an integer of ${bytes} bytes, more than ${this.#limits.maxBigIntBytes}`, 'maxBigIntBytes');
  }
}

/** The RESOURCE_EXHAUSTED error for a payload over a decode limit, naming the limit. */
export function decodeLimitError(what: string, limit: keyof DecodeLimits): RpcError {
  return new RpcError(RpcCode.RESOURCE_EXHAUSTED, `payload refused before decoding: ${what} (decode limit ${limit}; raise it in the serializer's options)`, {
    details: { limit },
  });
}
