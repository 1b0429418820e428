import { HEADER_BYTES, readHeader, type Frame } from './frame.js';

/** A body is first given this much room, then four times as much each time it fills. */
const FIRST_BODY_BYTES = 64 * 1024;

/**
 * Splits a byte stream into frames, whatever the chunking: half frames wait for the rest, and
 * one chunk may hold any number of frames. A frame that arrives whole within one chunk is handed
 * out as a view into it, without a copy. A frame split across chunks is copied into one buffer
 * of its own as its bytes arrive — never kept as a list of received chunks, which made a peer
 * sending one byte per write cost a Buffer (and its slab) per byte. That buffer starts at 64 KiB
 * and grows fourfold up to the declared length, so the memory a partial frame holds is at most
 * four times the bytes the peer really sent (or 64 KiB), never the length it merely declared;
 * growing fourfold rather than twofold leaves less garbage behind a large frame (5 MB instead of
 * 8 MB for 8 MiB), which is what a stream of large frames costs until the next GC.
 *
 * A header is checked as soon as its 20 bytes are present, so an oversized declared length
 * fails before any body byte is kept. After the first error the decoder is spent and throws
 * again on every call; its connection must be closed.
 *
 * `pause()` stops the hand-out after the current frame (the rest waits, unparsed, for
 * `resume()`): the connection's backpressure when a budget is exhausted.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  readonly #header = Buffer.allocUnsafe(HEADER_BYTES);
  #headerBytes = 0;
  #head: (Omit<Frame, 'body'> & { bodyLength: number }) | undefined;
  #body: Buffer | undefined;
  #bodyBytes = 0;
  /** Received bytes not parsed yet because the decoder is paused. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #paused = false;
  #frames = 0;
  #failure: Error | undefined;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /**
   * Room a partial frame's buffer may take beyond the bytes it needs now. The buffer grows
   * fourfold ahead of its bytes (one allocation and copy per fourfold, not per read), and that
   * room is memory like the rest; a reader that charges these bytes to a budget shared with
   * other connections sets it to what the budget has left, so that one read cannot grow a
   * buffer far past a spent budget.
   */
  growthAllowance = Number.POSITIVE_INFINITY;

  /** Bytes of memory held for frames not yet handed out (partial frames and paused input). */
  get bufferedBytes(): number {
    return this.#headerBytes + (this.#body?.length ?? 0) + this.#heldBytes;
  }

  /** Whether a frame has begun and not yet completed. */
  get inFrame(): boolean {
    return this.#headerBytes > 0 || this.#head !== undefined;
  }

  /** Frames handed out so far: a change tells that a frame boundary was crossed. */
  get frames(): number {
    return this.#frames;
  }

  /** Whether the hand-out is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Stops handing out frames after the one being handed out now; input is kept until `resume`. */
  pause(): void {
    this.#paused = true;
  }

  /** Hands out the frames held while paused, then goes on with new input. */
  resume(onFrame: (frame: Frame) => void): void {
    if (!this.#paused || this.#failure !== undefined) return;
    this.#paused = false;
    while (this.#held.length > 0 && !this.#paused) {
      const chunk = this.#held.shift()!;
      this.#heldBytes -= chunk.length;
      this.push(chunk, onFrame);
    }
  }

  /** Feeds a chunk; calls `onFrame` for every frame it completes, in order, until paused. */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#parse(chunk, onFrame);
    } catch (error) {
      this.#failure = error as Error;
      this.#body = undefined;
      this.#held = [];
      this.#heldBytes = 0;
      throw error;
    }
  }

  #parse(data: Buffer, onFrame: (frame: Frame) => void): void {
    let offset = 0;
    while (offset < data.length) {
      if (this.#paused) {
        const rest = data.subarray(offset);
        this.#held.push(rest);
        this.#heldBytes += rest.length;
        return;
      }
      if (this.#head === undefined) {
        if (this.#headerBytes === 0 && data.length - offset >= HEADER_BYTES) {
          // The common case: the header is whole in this chunk, and often the body too.
          const head = readHeader(data, offset, this.#maxFrameBytes);
          const end = offset + HEADER_BYTES + head.bodyLength;
          if (end <= data.length) {
            this.#deliver(head, data.subarray(offset + HEADER_BYTES, end), onFrame);
            offset = end;
            continue;
          }
          this.#head = head;
          offset += HEADER_BYTES;
        } else {
          const take = Math.min(HEADER_BYTES - this.#headerBytes, data.length - offset);
          data.copy(this.#header, this.#headerBytes, offset, offset + take);
          this.#headerBytes += take;
          offset += take;
          if (this.#headerBytes < HEADER_BYTES) return;
          this.#headerBytes = 0;
          this.#head = readHeader(this.#header, 0, this.#maxFrameBytes);
        }
        this.#bodyBytes = 0;
        this.#body = undefined;
      }
      const head = this.#head;
      const need = head.bodyLength - this.#bodyBytes;
      const take = Math.min(need, data.length - offset);
      if (take > 0) {
        this.#reserve(this.#bodyBytes + take, head.bodyLength);
        data.copy(this.#body!, this.#bodyBytes, offset, offset + take);
        this.#bodyBytes += take;
        offset += take;
      }
      if (this.#bodyBytes < head.bodyLength) return;
      const body = this.#body ?? EMPTY;
      this.#head = undefined;
      this.#body = undefined;
      this.#deliver(head, body, onFrame);
    }
  }

  /**
   * Makes room in the body buffer for `size` bytes, growing it fourfold, never past `limit`.
   * When what would be left after growing is at most a quarter of it, the body gets its whole
   * size at once: a 64 KiB answer arriving in two reads is one allocation and one copy, not two
   * (and what a peer can make this side reserve ahead of its bytes grows by 25 % at most).
   */
  #reserve(size: number, limit: number): void {
    const current = this.#body;
    if (current !== undefined && current.length >= size) return;
    let capacity = Math.min(limit, Math.max(size, current === undefined ? FIRST_BODY_BYTES : current.length * 4));
    if (limit - capacity <= capacity / 4) capacity = limit;
    const held = current?.length ?? 0;
    if (capacity - held > this.growthAllowance) capacity = Math.max(size, held + this.growthAllowance);
    const grown = Buffer.allocUnsafe(capacity);
    if (current !== undefined) current.copy(grown, 0, 0, this.#bodyBytes);
    this.#body = grown;
  }

  #deliver(head: Omit<Frame, 'body'> & { bodyLength: number }, body: Buffer, onFrame: (frame: Frame) => void): void {
    this.#frames++;
    onFrame({ type: head.type, flags: head.flags, serializer: head.serializer, status: head.status, requestId: head.requestId, body });
  }
}

const EMPTY = Buffer.alloc(0);
